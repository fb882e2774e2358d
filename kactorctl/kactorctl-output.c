/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kactorctl-output.h"
#include "macro.h"
#include "parse-util.h"

static const char *const json_format_table[_JSON_FORMAT_MAX] = {
        [JSON_OFF] = "off",
        [JSON_SHORT] = "short",
        [JSON_PRETTY] = "pretty",
};

int json_format_from_string(const char *s, JsonFormat *ret) {
        for (JsonFormat f = 0; f < _JSON_FORMAT_MAX; f++)
                if (streq(s, json_format_table[f])) {
                        *ret = f;
                        return 0;
                }
        return -EINVAL;
}

static bool json_is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void json_newline(FILE *f, unsigned depth) {
        fputc('\n', f);
        for (unsigned i = 0; i < depth; i++)
                fputs("        ", f);
}

/* A re-spacing of valid JSON, not a parser: strings are copied escapes and all (libkactor wrote them,
 * json-util.h's one way), so there is no second JSON writer to drift from the first. */
void json_format_write(FILE *f, const char *text, JsonFormat format) {
        bool pretty = format == JSON_PRETTY;
        unsigned depth = 0;

        for (const char *p = text; *p; p++) {
                switch (*p) {
                case '"': {
                        const char *q = p + 1;
                        while (*q && *q != '"')
                                q += q[0] == '\\' && q[1] ? 2 : 1;
                        fwrite(p, 1, (size_t) (q - p) + (*q ? 1 : 0), f);
                        p = *q ? q : q - 1;
                        break;
                }
                case '{':
                case '[': {
                        const char *q = p + 1;
                        while (json_is_space(*q))
                                q++;
                        fputc(*p, f);
                        if (*q == (*p == '{' ? '}' : ']')) { /* empty: {} and [] stay as they are */
                                fputc(*q, f);
                                p = q;
                        } else {
                                depth++;
                                if (pretty)
                                        json_newline(f, depth);
                        }
                        break;
                }
                case '}':
                case ']':
                        depth = depth > 0 ? depth - 1 : 0;
                        if (pretty)
                                json_newline(f, depth);
                        fputc(*p, f);
                        break;
                case ',':
                        fputc(',', f);
                        if (pretty)
                                json_newline(f, depth);
                        else
                                fputc(' ', f);
                        break;
                case ':':
                        fputs(": ", f);
                        break;
                default:
                        if (!json_is_space(*p))
                                fputc(*p, f);
                }
        }
        fputc('\n', f);
}

/* --- the pager ----------------------------------------------------------------------------------- */

static pid_t pager_pid = 0;
static int pager_saved_stderr = -1;

bool pager_is_open(void) {
        return pager_pid > 0;
}

/* Whether fds a and b are the same terminal: stderr then goes through the pager too, or it would
 * write across the pager's screen. */
static bool same_terminal(int a, int b) {
        struct stat x, y;

        return isatty(a) && isatty(b) && fstat(a, &x) >= 0 && fstat(b, &y) >= 0 && x.st_rdev == y.st_rdev;
}

static const char *pager_from_environment(void) {
        static const char *const names[] = { "KACTOR_PAGER", "SYSTEMD_PAGER", "PAGER" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                const char *p = getenv(names[i]);
                if (p)
                        return p;
        }
        return NULL;
}

static _Noreturn void pager_child(int fd, pid_t parent, const char *pager) {
        char buf[4096];
        ssize_t n;

        if (dup2(fd, STDIN_FILENO) < 0)
                _exit(EXIT_FAILURE);
        /* Goes when kactorctl does, however it ends. */
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
                _exit(EXIT_SUCCESS);
        /* F: quit when it fits on one screen, R: colours, S: cut long lines, X: leave the screen as
         * it is, M: verbose prompt, K: Ctrl-C quits. */
        if (!getenv("LESS"))
                (void) setenv("LESS", "FRSXMK", 1);
        if (pager)
                execl("/bin/sh", "sh", "-c", pager, (char *) NULL);
        else {
                execlp("less", "less", (char *) NULL);
                execlp("more", "more", (char *) NULL);
        }
        /* No pager to be had: pass the output through. */
        while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
                if (write(STDOUT_FILENO, buf, (size_t) n) != n)
                        break;
        _exit(EXIT_SUCCESS);
}

int pager_open(bool pager) {
        const char *command;
        pid_t parent = getpid(), pid;
        int fd[2];

        if (!pager || pager_pid > 0 || !isatty(STDOUT_FILENO))
                return 0;
        command = pager_from_environment();
        if (command && (command[strspn(command, " \t\n")] == 0 || streq(command, "cat")))
                return 0;

        fflush(stdout);
        if (pipe2(fd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(fd[0]);
                close(fd[1]);
                return r;
        }
        if (pid == 0)
                pager_child(fd[0], parent, command);

        if (same_terminal(STDOUT_FILENO, STDERR_FILENO)) {
                pager_saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
                if (pager_saved_stderr >= 0)
                        (void) dup2(fd[1], STDERR_FILENO);
        }
        if (dup2(fd[1], STDOUT_FILENO) < 0) {
                int r = -errno;
                close(fd[0]);
                close(fd[1]);
                return r;
        }
        close(fd[0]);
        close(fd[1]);
        /* A pager quit before the end is no error: the write gets EPIPE, not the signal. */
        signal(SIGPIPE, SIG_IGN);
        pager_pid = pid;
        return 0;
}

void pager_close(void) {
        int null;

        if (pager_pid <= 0)
                return;
        fflush(stdout);
        fflush(stderr);
        /* The pager sees the end of its input once no one holds the pipe: stdout goes to /dev/null
         * (stdio's stdout stays usable), stderr back where it was. */
        null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
                (void) dup2(null, STDOUT_FILENO);
                close(null);
        } else
                close(STDOUT_FILENO);
        if (pager_saved_stderr >= 0) {
                (void) dup2(pager_saved_stderr, STDERR_FILENO);
                close(pager_saved_stderr);
                pager_saved_stderr = -1;
        }
        while (waitpid(pager_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        pager_pid = 0;
}

/* --- the terminal -------------------------------------------------------------------------------- */

static unsigned terminal_size(bool lines) {
        struct winsize ws = {};
        const char *e;
        uint32_t n;

        if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0 &&
            (lines ? ws.ws_row : ws.ws_col) > 0)
                return lines ? ws.ws_row : ws.ws_col;
        e = getenv(lines ? "LINES" : "COLUMNS");
        if (e && parse_uint32(e, &n) >= 0)
                return n;
        return 0;
}

unsigned terminal_lines(void) {
        return terminal_size(true);
}

unsigned terminal_columns(void) {
        return terminal_size(false);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * kactorctl's value arguments. json-c builds the tree (structure, escapes, UTF-8); a scan of the
 * text before it keeps the syntax docs/kactorctl.md promises, which is stricter than json-c's in
 * places and looser in one: json-c takes comments, single quotes, trailing commas, NaN and
 * Infinity, "1." and case-insensitive literals, clamps out-of-range integers and turns unpaired
 * surrogates into U+FFFD, all of which are errors here; and its strict mode refuses leading zeros
 * ("007"), which arguments allow.
 */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "codec.h"
#include "kactorctl-value.h"
#include "macro.h"

static void json_object_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}

static int value_fail(ValueParseError *ret_error, int r, const char *message, size_t offset) {
        ret_error->message = message;
        ret_error->offset = offset;
        return r;
}

static bool value_is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Length of the number at s in JSON's grammar (leading zeros allowed), 0 when there is none there.
 * *ret_double says whether it has a fraction or an exponent. */
static size_t value_number_length(const char *s, bool *ret_double) {
        const char *p = s;
        bool is_double = false;

        if (*p == '-')
                p++;
        if (!isdigit((unsigned char) *p))
                return 0;
        while (isdigit((unsigned char) *p))
                p++;
        if (*p == '.') {
                if (!isdigit((unsigned char) p[1]))
                        return 0;
                p++;
                while (isdigit((unsigned char) *p))
                        p++;
                is_double = true;
        }
        if (*p == 'e' || *p == 'E') {
                const char *q = p + 1;
                if (*q == '+' || *q == '-')
                        q++;
                if (!isdigit((unsigned char) *q))
                        return 0;
                while (isdigit((unsigned char) *q))
                        q++;
                p = q;
                is_double = true;
        }
        *ret_double = is_double;
        return (size_t) (p - s);
}

/* Whether the n characters of a number at s fit their type: 0, -ERANGE with *ret_why set, or
 * -ENOMEM. */
static int value_number_check_range(const char *s, size_t n, bool is_double, const char **ret_why) {
        _cleanup_free_ char *buf = strndup(s, n);

        if (!buf)
                return -ENOMEM;
        errno = 0;
        if (is_double) {
                if (!isfinite(strtod(buf, NULL))) {
                        *ret_why = "number out of range for a double";
                        return -ERANGE;
                }
        } else if (strtoll(buf, NULL, 10), errno == ERANGE) {
                *ret_why = "integer out of range for int64 (write it as a decimal)";
                return -ERANGE;
        }
        return 0;
}

static int value_hex4(const char *s, uint32_t *ret) {
        uint32_t v = 0;

        for (int i = 0; i < 4; i++) {
                int c = (unsigned char) s[i];

                if (!isxdigit(c))
                        return -EINVAL;
                v = (v << 4) | (uint32_t) (isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
        }
        *ret = v;
        return 0;
}

/* The string literal at text + *i (its opening quote): checks its escapes, moves *i past it. */
static int value_scan_string(const char *text, size_t *i, ValueParseError *ret_error) {
        size_t p = *i + 1;

        for (;;) {
                uint32_t u, low;

                if (text[p] == 0)
                        return value_fail(ret_error, -EINVAL, "unterminated string", p);
                if (text[p] == '"')
                        break;
                if (text[p] != '\\') {
                        p++;
                        continue;
                }
                p++;
                if (text[p] == 0 || !strchr("\"\\/bfnrtu", text[p]))
                        return value_fail(ret_error, -EINVAL, "unknown escape sequence", p);
                if (text[p++] != 'u')
                        continue;
                if (value_hex4(text + p, &u) < 0)
                        return value_fail(ret_error, -EINVAL, "\\u needs four hex digits", p);
                p += 4;
                if (u >= 0xd800 && u <= 0xdbff) {
                        if (text[p] != '\\' || text[p + 1] != 'u' || value_hex4(text + p + 2, &low) < 0 ||
                            low < 0xdc00 || low > 0xdfff)
                                return value_fail(ret_error, -EINVAL, "unpaired UTF-16 surrogate", p);
                        p += 6;
                } else if (u >= 0xdc00 && u <= 0xdfff)
                        return value_fail(ret_error, -EINVAL, "unpaired UTF-16 surrogate", p);
                else if (u == 0)
                        return value_fail(ret_error, -EINVAL, "D-Bus strings cannot hold NUL characters", p);
        }
        *i = p + 1;
        return 0;
}

/* Checks the tokens of the JSON value at the start of text (the structure is json-c's to check) and
 * the nesting depth. Returns 0 and the length of the value, or -EINVAL/-ERANGE. */
static int value_scan(const char *text, size_t *ret_len, ValueParseError *ret_error) {
        static const char *const literals[] = { "true", "false", "null" };
        unsigned depth = 0;
        size_t i = 0;
        int r;

        while (value_is_space(text[i]))
                i++;
        do {
                char c = text[i];
                const char *why;
                bool is_double, literal = false;
                size_t n;

                if (value_is_space(c)) {
                        i++;
                        continue;
                }
                switch (c) {
                case 0:
                        return value_fail(ret_error, -EINVAL, "unexpected end", i);
                case '[':
                case '{':
                        if (depth >= CODEC_MAX_DEPTH)
                                return value_fail(ret_error, -EINVAL, "nested too deeply", i);
                        depth++;
                        i++;
                        continue;
                case ']':
                case '}':
                        if (depth > 0)
                                depth--;
                        i++;
                        continue;
                case ',': {
                        /* JSON has no trailing commas (a comma right after the opening bracket is
                         * json-c's to report). */
                        size_t next = i + 1, prev = i;

                        while (value_is_space(text[next]))
                                next++;
                        while (prev > 0 && value_is_space(text[prev - 1]))
                                prev--;
                        if (prev > 0 && strchr("[{", text[prev - 1])) {
                                i++;
                                continue;
                        }
                        if (text[next] == ']')
                                return value_fail(ret_error, -EINVAL, "unexpected character", next);
                        if (text[next] == '}')
                                return value_fail(ret_error, -EINVAL, "expected a string key", next);
                        i++;
                        continue;
                }
                case ':':
                        i++;
                        continue;
                case '"':
                        r = value_scan_string(text, &i, ret_error);
                        if (r < 0)
                                return r;
                        continue;
                default:
                        break;
                }

                for (size_t k = 0; k < ELEMENTSOF(literals); k++)
                        if (strncmp(text + i, literals[k], strlen(literals[k])) == 0) {
                                i += strlen(literals[k]);
                                literal = true;
                                break;
                        }
                if (literal)
                        continue;

                n = value_number_length(text + i, &is_double);
                if (n == 0)
                        return value_fail(ret_error, -EINVAL, "unexpected character", i);
                r = value_number_check_range(text + i, n, is_double, &why);
                if (r == -ERANGE)
                        return value_fail(ret_error, r, why, i);
                if (r < 0)
                        return r;
                i += n;
        } while (depth > 0);

        *ret_len = i;
        return 0;
}

/* json-c's tree as a kactor value; the scan already checked every number and string. */
static kactor_value *value_from_json_object(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_null:
                return kactor_value_new_nil();
        case json_type_boolean:
                return kactor_value_new_bool(json_object_get_boolean(o));
        case json_type_int:
                return kactor_value_new_int(json_object_get_int64(o));
        case json_type_double:
                return kactor_value_new_double(json_object_get_double(o));
        case json_type_string:
                return kactor_value_new_string(json_object_get_string(o));
        case json_type_array: {
                _cleanup_(kactor_value_freep) kactor_value *list = kactor_value_new_list();
                size_t n = json_object_array_length(o);

                if (!list)
                        return NULL;
                for (size_t i = 0; i < n; i++)
                        if (kactor_value_list_append(list, value_from_json_object(
                                                                   json_object_array_get_idx(o, i))) < 0)
                                return NULL;
                return TAKE_PTR(list);
        }
        case json_type_object: {
                _cleanup_(kactor_value_freep) kactor_value *map = kactor_value_new_map();

                if (!map)
                        return NULL;
                /* json-c already kept the last of repeated keys. */
                json_object_object_foreach(o, key, item)
                        if (kactor_value_map_set(map, key, value_from_json_object(item)) < 0)
                                return NULL;
                return TAKE_PTR(map);
        }
        }
        return NULL;
}

/* json-c's complaint about the structure, in the words docs/kactorctl.md shows. */
static const char *value_json_error(enum json_tokener_error e) {
        switch (e) {
        case json_tokener_error_parse_array:
                return "expected ',' or ']'";
        case json_tokener_error_parse_object_value_sep:
                return "expected ',' or '}'";
        case json_tokener_error_parse_object_key_sep:
                return "expected ':'";
        case json_tokener_error_parse_object_key_name:
                return "expected a string key";
        case json_tokener_error_parse_unexpected:
                return "unexpected character";
        default:
                return json_tokener_error_desc(e);
        }
}

int value_parse_json(const char *text, kactor_value **ret, ValueParseError *ret_error) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct json_tokener *tok;
        enum json_tokener_error e;
        kactor_value *v;
        size_t len, end;
        int r;

        r = value_scan(text, &len, ret_error);
        if (r < 0)
                return r;

        /* Deep enough that the scan's limit is the one that holds. */
        tok = json_tokener_new_ex(CODEC_MAX_DEPTH + 2);
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, text, (int) len);
        e = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (e == json_tokener_continue)
                return value_fail(ret_error, -EINVAL, "unexpected end", len);
        if (e != json_tokener_success)
                return value_fail(ret_error, -EINVAL, value_json_error(e), end);

        end = len;
        while (value_is_space(text[end]))
                end++;
        if (text[end] != 0)
                return value_fail(ret_error, -EINVAL, "trailing characters", end);

        v = value_from_json_object(o);
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

int value_parse_number(const char *text, kactor_value **ret, ValueParseError *ret_error) {
        const char *why;
        kactor_value *v;
        bool is_double;
        size_t n;
        int r;

        n = value_number_length(text, &is_double);
        if (n == 0 || text[n] != 0)
                return -EINVAL;
        r = value_number_check_range(text, n, is_double, &why);
        if (r == -ERANGE)
                return value_fail(ret_error, r, why, 0);
        if (r < 0)
                return r;

        v = is_double ? kactor_value_new_double(strtod(text, NULL))
                      : kactor_value_new_int(strtoll(text, NULL, 10));
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

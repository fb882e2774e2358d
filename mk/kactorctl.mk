# kactorctl's extras (included by the Makefile): the man pages, written in scdoc, and the bash
# completion, built with `all` and installed with `install`.

MANDIR ?= $(PREFIX)/share/man
BASHCOMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
SCDOC ?= scdoc

MAN_PAGES := $(BUILD)/man/kactorctl.1 $(BUILD)/man/kactor-nodemgr.8

$(BUILD)/man/%: man/%.scd
	@mkdir -p $(dir $@)
	$(SCDOC) < $< > $@.tmp && mv $@.tmp $@

all-extras:: $(MAN_PAGES)

install-extras:: $(MAN_PAGES)
	install -Dm644 $(BUILD)/man/kactorctl.1 $(DESTDIR)$(MANDIR)/man1/kactorctl.1
	install -Dm644 $(BUILD)/man/kactor-nodemgr.8 $(DESTDIR)$(MANDIR)/man8/kactor-nodemgr.8
	install -Dm644 shell-completion/bash/kactorctl $(DESTDIR)$(BASHCOMPLETIONDIR)/kactorctl

# kactorctl's output formats are tested alone: the test links only kactorctl-output.o and lib/basic.
$(BUILD)/tests/unit/test-kactorctl-output: tests/unit/test-kactorctl-output.c $(BUILD)/obj/kactorctl/kactorctl-output.o \
                $(BUILD)/libkactor-basic.a
	@mkdir -p $(dir $@)
	$(CC) $(INC_LIB) -Ikactorctl $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(filter %.o %.a,$^) $(PKG_CRITERION) -lm

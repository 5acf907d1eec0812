/* commands: the `tegula` CLI's subcommand table and the few helpers every command shares.
 *
 * Each tools/cmd_<name>.c defines `const tool_command command_<name>`. The X-macro list below
 * is the one table main.c dispatches from and `tegula --help` lists (in this order), so a new
 * command plugs in with one line here. */
#ifndef TEGULA_COMMANDS_H
#define TEGULA_COMMANDS_H

#include <stdio.h>

#define TEGULA_COMMAND_TABLE(X) \
    X(keygen)                   \
    X(mkchain)                  \
    X(fsck)                     \
    X(up)                       \
    X(submit)                   \
    X(load)

/* Process exit statuses shared by every command. */
enum {
    TOOL_EXIT_OK = 0,
    TOOL_EXIT_FAILURE = 1, /* the command was understood but failed */
    TOOL_EXIT_USAGE = 2,   /* bad command line */
};

typedef struct tool_command {
    const char *name;
    const char *summary;  /* one line, for `tegula --help` */
    const char *synopsis; /* "Usage: ..." lines, also shown after a usage error */
    const char *details;  /* the rest of `tegula <name> --help` */
    /* argv[0] is the command name (getopt_long-ready: reset optind = 0 first).
     * Returns the process exit status. */
    int (*run)(const struct tool_command *self, int argc, char **argv);
} tool_command;

#define TEGULA_DECLARE_COMMAND(name) extern const tool_command command_##name;
TEGULA_COMMAND_TABLE(TEGULA_DECLARE_COMMAND)
#undef TEGULA_DECLARE_COMMAND

/* Prints the command's synopsis and details (what `tegula <name> --help` shows). */
void tool_print_help(const tool_command *cmd, FILE *out);
/* Prints "tegula <name>: <reason>", the synopsis and a --help hint to stderr; returns
 * TOOL_EXIT_USAGE so a command can `return tool_usage_error(self, ...)`. */
int tool_usage_error(const tool_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "tegula <name>: <reason>" to stderr; returns TOOL_EXIT_FAILURE. */
int tool_fail(const tool_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The getopt_long '?' / ':' case: names the offending option in a usage error. `optstring`
 * must start with ':' so a missing argument is told apart from an unknown option. */
int tool_bad_option(const tool_command *cmd, int opt, char **argv);

#endif

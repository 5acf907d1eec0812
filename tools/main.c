/* tegula: the command-line tool. `tegula <command> [options]`; the commands are listed in
 * commands.h. */
#include <getopt.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "log.h"

#define TEGULA_TABLE_ENTRY(name) &command_##name,
static const tool_command *const commands[] = {TEGULA_COMMAND_TABLE(TEGULA_TABLE_ENTRY)};
#undef TEGULA_TABLE_ENTRY

static const size_t command_count = sizeof commands / sizeof commands[0];

static void print_usage(FILE *out)
{
    fputs("Usage: tegula <command> [options]\n"
          "       tegula <command> --help\n"
          "\n"
          "tegula runs and tests a Certificate Transparency log (static-ct-api).\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < command_count; i++)
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\nExit status: 0 on success, 1 on failure, 2 on a bad command line.\n", out);
}

static bool is_help_flag(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static const tool_command *find_command(const char *name)
{
    for (size_t i = 0; i < command_count; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

void tool_print_help(const tool_command *cmd, FILE *out)
{
    fprintf(out, "%s\n%s", cmd->synopsis, cmd->details);
}

int tool_usage_error(const tool_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tegula %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s\nRun 'tegula %s --help' for details.\n", cmd->synopsis, cmd->name);
    return TOOL_EXIT_USAGE;
}

int tool_fail(const tool_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tegula %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TOOL_EXIT_FAILURE;
}

int tool_bad_option(const tool_command *cmd, int opt, char **argv)
{
    /* getopt leaves optind past the offending word except inside a cluster of short
     * options ("-xy"), where optopt names the character. */
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    if (opt == ':') {
        if (optopt > 0 && optopt < 128 && word[0] == '-' && word[1] != '-')
            return tool_usage_error(cmd, "option '-%c' needs a value", optopt);
        return tool_usage_error(cmd, "option '%s' needs a value", word);
    }
    if (optopt > 0 && optopt < 128)
        return tool_usage_error(cmd, "unknown option '-%c'", optopt);
    return tool_usage_error(cmd, "unknown option '%s'", word);
}

int main(int argc, char **argv)
{
    log_init("tegula", LOG_INFO);
    if (argc < 2) {
        print_usage(stderr);
        return TOOL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (is_help_flag(name) || strcmp(name, "help") == 0) {
        /* `tegula help <command>` is the same as `tegula <command> --help`. */
        if (strcmp(name, "help") == 0 && argc > 2) {
            const tool_command *cmd = find_command(argv[2]);
            if (!cmd) {
                fprintf(stderr, "tegula: unknown command '%s'\n\n", argv[2]);
                print_usage(stderr);
                return TOOL_EXIT_USAGE;
            }
            tool_print_help(cmd, stdout);
            return TOOL_EXIT_OK;
        }
        print_usage(stdout);
        return TOOL_EXIT_OK;
    }
    const tool_command *cmd = find_command(name);
    if (!cmd) {
        if (name[0] == '-')
            fprintf(stderr, "tegula: unknown option '%s' (options follow the command)\n\n", name);
        else
            fprintf(stderr, "tegula: unknown command '%s'\n\n", name);
        print_usage(stderr);
        return TOOL_EXIT_USAGE;
    }
    /* Every command answers --help the same way, whatever its own parser does. */
    if (argc > 2 && is_help_flag(argv[2])) {
        tool_print_help(cmd, stdout);
        return TOOL_EXIT_OK;
    }
    optind = 0;
    opterr = 0;
    int status = cmd->run(cmd, argc - 1, argv + 1);
    if (fflush(stdout) != 0 && status == TOOL_EXIT_OK) {
        perror("tegula: writing standard output");
        return TOOL_EXIT_FAILURE;
    }
    return status;
}

/* tegula up: runs a whole deployment from one config on this host — one tegula-frontend, the
 * batchers of batchers.addresses and one tegula-sequencer per log — as a small supervisor:
 * child output is forwarded line by line with the child's name in front, a child that exits
 * is restarted with exponential backoff, and SIGINT/SIGTERM stop everything in dependency
 * order (frontend, then batchers, then sequencers), each stage bounded, and exit 0.
 *
 * Children run in their own process group (a terminal's ^C reaches only the supervisor, which
 * then stops them in order) and get SIGTERM if the supervisor dies. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "commands.h"
#include "config.h"
#include "lock.h"
#include "log.h"

#define MAX_BATCHERS 64
#define MAX_CHILDREN (1 + MAX_BATCHERS + CONFIG_MAX_LOGS)
#define MAX_ARGS 16
/* A forwarded line longer than this is cut into pieces (each still prefixed). */
#define LINE_MAX_BYTES 8192
#define RESTART_BACKOFF_MIN_MS 250
#define RESTART_BACKOFF_MAX_MS 10000
/* A child that ran at least this long was healthy: its next restart starts from the minimum. */
#define HEALTHY_RUN_MS 10000
#define DEFAULT_STOP_TIMEOUT_MS 15000

typedef enum child_role { ROLE_FRONTEND = 0, ROLE_BATCHER = 1, ROLE_SEQUENCER = 2 } child_role;

typedef struct child {
    char name[96];
    child_role role;
    char *argv[MAX_ARGS + 1];
    int argc;
    bool create;           /* sequencer: --create on its first start only */
    pid_t pid;             /* 0 when not running */
    int out_fd;            /* read end of the child's stdout+stderr pipe; -1 when closed */
    buffer line;           /* partial line read from out_fd */
    int64_t started_ms;
    int64_t restart_at_ms; /* 0: no restart scheduled */
    unsigned backoff_ms;
    unsigned starts;
} child;

typedef struct supervisor {
    const tool_command *self;
    child children[MAX_CHILDREN];
    size_t count;
    int signal_fd;
    bool stopping;
    int exit_status;        /* what `up` returns once everything stopped */
    unsigned stop_timeout_ms;
    int stage;              /* while stopping: the role being stopped */
    int64_t stage_deadline_ms;
    bool stage_killed;
} supervisor;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int child_add_arg(child *c, const char *arg)
{
    if (c->argc == MAX_ARGS)
        return -1;
    c->argv[c->argc] = strdup(arg);
    if (!c->argv[c->argc])
        return -1;
    c->argc++;
    c->argv[c->argc] = NULL;
    return 0;
}

static child *supervisor_add(supervisor *s, child_role role, const char *name, const char *bin_dir,
                             const char *binary)
{
    if (s->count == MAX_CHILDREN)
        return NULL;
    child *c = &s->children[s->count++];
    memset(c, 0, sizeof *c);
    c->role = role;
    c->out_fd = -1;
    c->backoff_ms = RESTART_BACKOFF_MIN_MS;
    snprintf(c->name, sizeof c->name, "%s", name);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", bin_dir, binary);
    return child_add_arg(c, path) == 0 ? c : NULL;
}

static void supervisor_free(supervisor *s)
{
    for (size_t i = 0; i < s->count; i++) {
        for (int j = 0; j < s->children[i].argc; j++)
            free(s->children[i].argv[j]);
        if (s->children[i].out_fd >= 0)
            close(s->children[i].out_fd);
        buffer_free(&s->children[i].line);
    }
    if (s->signal_fd >= 0)
        close(s->signal_fd);
}

/* Writes "[name] text\n" in one write so lines of different children never interleave. */
static void forward_line(const child *c, const uint8_t *text, size_t len)
{
    char out[LINE_MAX_BYTES + 128];
    int n = snprintf(out, sizeof out, "[%s] ", c->name);
    if (n < 0)
        return;
    if (len > sizeof out - (size_t)n - 1)
        len = sizeof out - (size_t)n - 1;
    memcpy(out + n, text, len);
    size_t total = (size_t)n + len;
    out[total++] = '\n';
    size_t done = 0;
    while (done < total) {
        ssize_t w = write(STDERR_FILENO, out + done, total - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* our stderr is gone: nothing better to do with the line */
        done += (size_t)w;
    }
}

/* Forwards every complete line in c->line; with `all`, the incomplete tail too. */
static void flush_lines(child *c, bool all)
{
    size_t start = 0;
    for (size_t i = 0; i < c->line.len; i++) {
        if (c->line.data[i] == '\n') {
            forward_line(c, c->line.data + start, i - start);
            start = i + 1;
        } else if (i - start + 1 >= LINE_MAX_BYTES) {
            forward_line(c, c->line.data + start, i - start + 1);
            start = i + 1;
        }
    }
    if (all && start < c->line.len) {
        forward_line(c, c->line.data + start, c->line.len - start);
        start = c->line.len;
    }
    memmove(c->line.data, c->line.data + start, c->line.len - start);
    c->line.len -= start;
}

/* Reads what the child wrote. Returns false at end of file (the fd is then closed). */
static bool read_output(child *c)
{
    for (;;) {
        if (buffer_reserve(&c->line, 4096) != 0) {
            c->line.len = 0;
            return true;
        }
        ssize_t n = read(c->out_fd, c->line.data + c->line.len, 4096);
        if (n > 0) {
            c->line.len += (size_t)n;
            flush_lines(c, false);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        flush_lines(c, true);
        close(c->out_fd);
        c->out_fd = -1;
        return false;
    }
}

static int child_start(supervisor *s, child *c)
{
    /* --create only on the first start: a restarted sequencer must find the log it made. */
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    for (int i = 0; i < c->argc; i++)
        argv[argc++] = c->argv[i];
    if (c->create && c->starts == 0)
        argv[argc++] = "--create";
    argv[argc] = NULL;

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        log_error("cannot make a pipe", "child=%s error=\"%s\"", c->name, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot fork", "child=%s error=\"%s\"", c->name, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        /* Child: only async-signal-safe calls until exec. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1); /* the supervisor died before prctl took effect */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            if (devnull != STDIN_FILENO)
                close(devnull);
        }
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        execv(argv[0], argv);
        static const char msg[] = "tegula up: exec failed\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            /* nothing to do */
        }
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    if (c->out_fd >= 0) {
        /* Output of the previous run that was not read yet. */
        read_output(c);
        if (c->out_fd >= 0)
            close(c->out_fd);
    }
    c->out_fd = fds[0];
    c->pid = pid;
    c->started_ms = now_ms();
    c->restart_at_ms = 0;
    c->starts++;
    buffer cmd = {0};
    for (int i = 0; i < argc; i++)
        buffer_printf(&cmd, "%s%s", i ? " " : "", i == 0 ? strrchr(argv[0], '/') + 1 : argv[i]);
    log_info("child started", "child=%s pid=%d start=%u cmd=\"%s\"", c->name, (int)pid,
             c->starts, cmd.data ? (char *)cmd.data : "");
    buffer_free(&cmd);
    (void)s;
    return 0;
}

static void describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exit=%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "signal=%d", WTERMSIG(status));
    else
        snprintf(out, cap, "status=%d", status);
}

static void begin_stop(supervisor *s, const char *why);

/* A child ended: while running, schedule its restart, unless it said its command line or
 * config is wrong (exit 2), which no restart can fix. */
static void child_exited(supervisor *s, child *c, int status)
{
    char how[48];
    describe_status(status, how, sizeof how);
    /* What the child wrote before it died is in the pipe now: forward it before the news
     * of its exit. (End of file arrives through poll.) */
    if (c->out_fd >= 0)
        read_output(c);
    int64_t ran_ms = now_ms() - c->started_ms;
    c->pid = 0;
    if (s->stopping) {
        log_info("child stopped", "child=%s %s", c->name, how);
        return;
    }
    if (WIFEXITED(status) && (WEXITSTATUS(status) == TOOL_EXIT_USAGE ||
                              WEXITSTATUS(status) == 127)) {
        log_error("child refused its command line or config; stopping everything",
                  "child=%s %s", c->name, how);
        s->exit_status = TOOL_EXIT_FAILURE;
        begin_stop(s, "a child cannot run");
        return;
    }
    if (ran_ms >= HEALTHY_RUN_MS)
        c->backoff_ms = RESTART_BACKOFF_MIN_MS;
    c->restart_at_ms = now_ms() + c->backoff_ms;
    log_warn("child exited; restarting", "child=%s %s ran_ms=%lld restart_in_ms=%u", c->name,
             how, (long long)ran_ms, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > RESTART_BACKOFF_MAX_MS ? RESTART_BACKOFF_MAX_MS
                                                               : c->backoff_ms * 2;
}

static void reap(supervisor *s)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < s->count; i++) {
            if (s->children[i].pid == pid) {
                child_exited(s, &s->children[i], status);
                break;
            }
        }
    }
}

static bool stage_running(const supervisor *s, int role)
{
    for (size_t i = 0; i < s->count; i++)
        if ((int)s->children[i].role == role && s->children[i].pid > 0)
            return true;
    return false;
}

static void signal_stage(supervisor *s, int role, int sig)
{
    for (size_t i = 0; i < s->count; i++) {
        child *c = &s->children[i];
        if ((int)c->role == role && c->pid > 0)
            kill(c->pid, sig);
    }
}

/* Moves to the next stage with running children and sends it SIGTERM. */
static void advance_stop(supervisor *s)
{
    while (s->stage <= ROLE_SEQUENCER && !stage_running(s, s->stage))
        s->stage++;
    if (s->stage > ROLE_SEQUENCER)
        return;
    signal_stage(s, s->stage, SIGTERM);
    s->stage_deadline_ms = now_ms() + s->stop_timeout_ms;
    s->stage_killed = false;
}

static void begin_stop(supervisor *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = true;
    log_info("stopping", "reason=\"%s\" order=frontend,batchers,sequencers timeout_ms=%u", why,
             s->stop_timeout_ms);
    for (size_t i = 0; i < s->count; i++)
        s->children[i].restart_at_ms = 0;
    s->stage = ROLE_FRONTEND;
    advance_stop(s);
}

static void kill_everything(supervisor *s)
{
    for (int role = ROLE_FRONTEND; role <= ROLE_SEQUENCER; role++)
        signal_stage(s, role, SIGKILL);
}

static bool any_running(const supervisor *s)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->children[i].pid > 0)
            return true;
    return false;
}

static void handle_signals(supervisor *s)
{
    struct signalfd_siginfo info;
    while (read(s->signal_fd, &info, sizeof info) == (ssize_t)sizeof info) {
        int sig = (int)info.ssi_signo;
        if (sig == SIGCHLD) {
            reap(s);
        } else if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            if (s->stopping) {
                log_warn("second signal: killing every child now", "signal=%d", sig);
                kill_everything(s);
            } else {
                begin_stop(s, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
            }
        }
    }
    /* Signals coalesce: reap in any case, a SIGCHLD may hide behind another. */
    reap(s);
}

static int run_loop(supervisor *s)
{
    struct pollfd pfds[MAX_CHILDREN + 1];
    child *owners[MAX_CHILDREN + 1];
    for (;;) {
        int64_t now = now_ms();
        if (s->stopping) {
            if (s->stage <= ROLE_SEQUENCER && !stage_running(s, s->stage)) {
                s->stage++;
                advance_stop(s);
            }
            if (s->stage > ROLE_SEQUENCER && !any_running(s))
                break;
            if (s->stage <= ROLE_SEQUENCER && now >= s->stage_deadline_ms && !s->stage_killed) {
                log_warn("children did not stop in time; killing them", "stage=%s",
                         s->stage == ROLE_FRONTEND ? "frontend"
                         : s->stage == ROLE_BATCHER ? "batchers" : "sequencers");
                signal_stage(s, s->stage, SIGKILL);
                s->stage_killed = true;
            }
        } else {
            for (size_t i = 0; i < s->count; i++) {
                child *c = &s->children[i];
                if (c->pid == 0 && c->restart_at_ms && now >= c->restart_at_ms &&
                    child_start(s, c) != 0)
                    c->restart_at_ms = now + c->backoff_ms;
            }
        }
        int timeout = 1000;
        for (size_t i = 0; i < s->count; i++) {
            int64_t at = s->children[i].restart_at_ms;
            if (!s->stopping && at) {
                int64_t wait = at - now;
                timeout = wait < 0 ? 0 : wait < timeout ? (int)wait : timeout;
            }
        }
        if (s->stopping && !s->stage_killed && s->stage <= ROLE_SEQUENCER) {
            int64_t wait = s->stage_deadline_ms - now;
            timeout = wait < 0 ? 0 : wait < timeout ? (int)wait : timeout;
        }
        nfds_t n = 0;
        pfds[n] = (struct pollfd){.fd = s->signal_fd, .events = POLLIN};
        owners[n++] = NULL;
        for (size_t i = 0; i < s->count; i++) {
            if (s->children[i].out_fd >= 0) {
                pfds[n] = (struct pollfd){.fd = s->children[i].out_fd, .events = POLLIN};
                owners[n++] = &s->children[i];
            }
        }
        int ready = poll(pfds, n, timeout);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll failed", "error=\"%s\"", strerror(errno));
            kill_everything(s);
            return TOOL_EXIT_FAILURE;
        }
        for (nfds_t i = 1; i < n; i++)
            if (pfds[i].revents && owners[i]->out_fd >= 0)
                read_output(owners[i]);
        if (pfds[0].revents)
            handle_signals(s);
    }
    return s->exit_status;
}

/* The directory of the running tegula binary, where the role binaries are built. */
static int own_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0)
        return -1;
    out[n] = 0;
    char *slash = strrchr(out, '/');
    if (!slash)
        return -1;
    *slash = 0;
    return 0;
}

static int parse_number(const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

typedef struct up_options {
    const char *config_path;
    long batchers; /* 0: one per batchers.addresses entry */
    long http_base; /* 0: no --http for batchers and sequencers */
    bool create;
    const char *bin_dir;
    long stop_timeout_ms;
} up_options;

/* --create is for logs that do not exist yet: a sequencer refuses to create over an existing
 * lock, so with a deployment half made (a first run stopped early) only the missing logs get
 * it. When the lock cannot be read, the sequencer is left to decide. */
static bool log_needs_creation(const config_log *log)
{
    error err = {{0}};
    lock *l = lock_open(log->lock, &err);
    if (!l) {
        log_warn("cannot open the lock; passing --create anyway", "log=%s error=\"%s\"",
                 log->name, err.msg);
        return true;
    }
    buffer content = {0};
    int rc = lock_read(l, &content, NULL, &err);
    buffer_free(&content);
    lock_close(l);
    if (rc == LOCK_OK) {
        log_info("the log exists; its sequencer starts without --create", "log=%s", log->name);
        return false;
    }
    if (rc != LOCK_NOT_FOUND)
        log_warn("cannot read the lock; passing --create anyway", "log=%s error=\"%s\"",
                 log->name, err.msg);
    return true;
}

static int build_children(supervisor *s, const config *cfg, const up_options *opt,
                          const char *config_abs, const char *bin_dir)
{
    const tool_command *self = s->self;
    if (!cfg->batchers.addresses)
        return tool_fail(self, "%s: tegula up needs batchers.addresses: a DNS name (%s) cannot "
                               "point at several batchers on this host",
                         opt->config_path, cfg->batchers.dns);
    size_t batchers = cfg->batchers.address_count;
    if (opt->batchers) {
        if ((size_t)opt->batchers > batchers)
            return tool_fail(self, "--batchers %ld: %s lists only %zu batchers.addresses",
                             opt->batchers, opt->config_path, batchers);
        batchers = (size_t)opt->batchers;
    }
    if (batchers > MAX_BATCHERS)
        return tool_fail(self, "at most %d batchers", MAX_BATCHERS);
    if (opt->http_base && opt->http_base + (long)batchers + (long)cfg->log_count - 1 > 65535)
        return tool_fail(self, "--http-base %ld: not enough ports above it", opt->http_base);

    static const char *const binaries[] = {"tegula-frontend", "tegula-batcher",
                                           "tegula-sequencer"};
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", bin_dir, binaries[i]);
        if (access(path, X_OK) != 0)
            return tool_fail(self, "%s: %s (build it with make)", path, strerror(errno));
    }

    char name[96], http[64];
    child *c = supervisor_add(s, ROLE_FRONTEND, "frontend", bin_dir, binaries[0]);
    if (!c || child_add_arg(c, "-c") || child_add_arg(c, config_abs))
        return tool_fail(self, "out of memory");
    for (size_t i = 0; i < batchers; i++) {
        snprintf(name, sizeof name, "batcher-%zu", i);
        c = supervisor_add(s, ROLE_BATCHER, name, bin_dir, binaries[1]);
        if (!c || child_add_arg(c, "-c") || child_add_arg(c, config_abs) ||
            child_add_arg(c, "--listen") || child_add_arg(c, cfg->batchers.addresses[i]))
            return tool_fail(self, "out of memory");
        if (opt->http_base) {
            snprintf(http, sizeof http, "127.0.0.1:%ld", opt->http_base + (long)i);
            if (child_add_arg(c, "--http") || child_add_arg(c, http))
                return tool_fail(self, "out of memory");
        }
    }
    for (size_t j = 0; j < cfg->log_count; j++) {
        snprintf(name, sizeof name, "sequencer-%s", cfg->logs[j].name);
        c = supervisor_add(s, ROLE_SEQUENCER, name, bin_dir, binaries[2]);
        if (!c || child_add_arg(c, "-c") || child_add_arg(c, config_abs) ||
            child_add_arg(c, "--log") || child_add_arg(c, cfg->logs[j].name))
            return tool_fail(self, "out of memory");
        if (opt->http_base) {
            snprintf(http, sizeof http, "127.0.0.1:%ld",
                     opt->http_base + (long)batchers + (long)j);
            if (child_add_arg(c, "--http") || child_add_arg(c, http))
                return tool_fail(self, "out of memory");
        }
        c->create = opt->create && log_needs_creation(&cfg->logs[j]);
    }
    return 0;
}

static int up(const tool_command *self, const up_options *opt)
{
    error err = {{0}};
    config *cfg = config_load(opt->config_path, &err);
    if (!cfg)
        return tool_fail(self, "%s", err.msg);
    log_init("up", cfg->log_level);

    supervisor s = {.self = self, .signal_fd = -1, .stop_timeout_ms = (unsigned)opt->stop_timeout_ms};
    int status = TOOL_EXIT_FAILURE;
    char config_abs[PATH_MAX], bin_dir[PATH_MAX];
    if (!realpath(opt->config_path, config_abs)) {
        status = tool_fail(self, "%s: %s", opt->config_path, strerror(errno));
        goto done;
    }
    if (opt->bin_dir) {
        snprintf(bin_dir, sizeof bin_dir, "%s", opt->bin_dir);
    } else if (own_dir(bin_dir, sizeof bin_dir) != 0) {
        status = tool_fail(self, "cannot find the directory of this program; use --bin-dir");
        goto done;
    }
    if (build_children(&s, cfg, opt, config_abs, bin_dir) != 0)
        goto done;

    /* Signals are read from a signalfd in the poll loop, so they must stay blocked; children
     * unblock them before exec. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0 ||
        (s.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        status = tool_fail(self, "signalfd: %s", strerror(errno));
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);

    log_info("starting", "config=%s frontend=%s batchers=%zu logs=%zu create=%s", config_abs,
             cfg->frontend.listen, s.count - 1 - cfg->log_count, cfg->log_count,
             opt->create ? "true" : "false");
    /* Sequencers first, so batchers and the frontend find them when they come up. */
    for (int role = ROLE_SEQUENCER; role >= ROLE_FRONTEND; role--) {
        for (size_t i = 0; i < s.count; i++) {
            child *c = &s.children[i];
            if ((int)c->role == role && child_start(&s, c) != 0)
                c->restart_at_ms = now_ms() + c->backoff_ms;
        }
    }
    status = run_loop(&s);
    log_info("stopped", "exit=%d", status);
done:
    supervisor_free(&s);
    config_free(cfg);
    return status;
}

static int up_run(const tool_command *self, int argc, char **argv)
{
    enum { OPT_BATCHERS = 256, OPT_HTTP_BASE, OPT_CREATE, OPT_BIN_DIR, OPT_STOP_TIMEOUT };
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"batchers", required_argument, NULL, OPT_BATCHERS},
        {"http-base", required_argument, NULL, OPT_HTTP_BASE},
        {"create", no_argument, NULL, OPT_CREATE},
        {"bin-dir", required_argument, NULL, OPT_BIN_DIR},
        {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    up_options opt = {.stop_timeout_ms = DEFAULT_STOP_TIMEOUT_MS};
    int o;
    while ((o = getopt_long(argc, argv, ":c:h", options, NULL)) != -1) {
        switch (o) {
        case 'c': opt.config_path = optarg; break;
        case OPT_BATCHERS:
            if (parse_number(optarg, 1, MAX_BATCHERS, &opt.batchers) != 0)
                return tool_usage_error(self, "--batchers takes 1 to %d", MAX_BATCHERS);
            break;
        case OPT_HTTP_BASE:
            if (parse_number(optarg, 1, 65535, &opt.http_base) != 0)
                return tool_usage_error(self, "--http-base takes a port, 1 to 65535");
            break;
        case OPT_CREATE: opt.create = true; break;
        case OPT_BIN_DIR: opt.bin_dir = optarg; break;
        case OPT_STOP_TIMEOUT:
            if (parse_number(optarg, 100, 600000, &opt.stop_timeout_ms) != 0)
                return tool_usage_error(self, "--stop-timeout takes 100 to 600000 ms");
            break;
        case 'h': tool_print_help(self, stdout); return TOOL_EXIT_OK;
        default: return tool_bad_option(self, o, argv);
        }
    }
    if (optind < argc)
        return tool_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (!opt.config_path)
        return tool_usage_error(self, "-c tegula.yaml is required");
    return up(self, &opt);
}

const tool_command command_up = {
    .name = "up",
    .summary = "run a whole deployment (frontend, batchers, sequencers) from one config",
    .synopsis = "Usage: tegula up -c tegula.yaml [--batchers N] [--http-base PORT] [--create]\n"
                "                 [--stop-timeout MS] [--bin-dir DIR]",
    .details =
        "\n"
        "Starts one tegula-sequencer per log, one tegula-batcher per batchers.addresses\n"
        "entry (listening on it) and one tegula-frontend, all reading the same config, and\n"
        "supervises them: every line a child writes is forwarded to standard error as\n"
        "\"[name] line\" (names: frontend, batcher-0.., sequencer-<log>), and a child that\n"
        "exits is restarted after 250 ms, doubling up to 10 s while it keeps failing. A child\n"
        "that exits with status 2 (bad command line or config) stops everything (exit 1).\n"
        "SIGINT or SIGTERM stops the frontend, then the batchers, then the sequencers (each\n"
        "stage SIGTERM, then SIGKILL after --stop-timeout) and exits 0; a second signal\n"
        "kills everything at once. Children are told SIGTERM if tegula up itself dies.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE     the deployment's tegula.yaml (required)\n"
        "      --batchers N      start only the first N of batchers.addresses\n"
        "      --http-base PORT  give batcher i --http 127.0.0.1:PORT+i and the sequencer of\n"
        "                        log j (config order) --http 127.0.0.1:PORT+batchers+j, for\n"
        "                        their /healthz, /readyz and /metrics\n"
        "      --create          pass --create to the sequencers of logs whose lock holds no\n"
        "                        checkpoint yet, on their first start only (restarts never\n"
        "                        create; a sequencer still refuses to create over a\n"
        "                        published log)\n"
        "      --stop-timeout MS how long each stop stage may take (default 15000)\n"
        "      --bin-dir DIR     where the tegula-* binaries are (default: next to tegula)\n",
    .run = up_run,
};

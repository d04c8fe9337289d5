/*
 * emulator.h — runs `mtlspop emulator` as a subprocess for the C tests and the benchmark.
 *
 * The emulator prints one line of JSON when it is ready and serves until its stdin closes.
 * emu_get() pulls string values out of that line; it is a test helper, not a JSON parser (the
 * emulator's values contain no escapes that matter here).
 *
 * Needs _GNU_SOURCE (for pipe2) defined before the first system header.
 */
#ifndef MTLSPOP_CTEST_EMULATOR_H
#define MTLSPOP_CTEST_EMULATOR_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct emu {
    pid_t pid;
    int stdin_fd;  /* closing it stops the emulator */
    int stdout_fd;
    char line[1 << 16];
} emu;

/* emu_waitpid waits up to ms milliseconds for the emulator to exit; 1 when it has. */
static int emu_waitpid(emu *e, int ms) {
    int status;
    for (int waited = 0; waited <= ms; waited += 50) {
        if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
            return 1;
        }
        usleep(50 * 1000);
    }
    return 0;
}

/* emu_stop closes the emulator's stdin, which stops it. An emulator that does not exit within
 * 5 s gets SIGTERM, which it also handles by shutting down cleanly (removing its temporary
 * directory, key files included); only one that ignores that too is killed. Returns 0 when the
 * emulator stopped on its own, 1 when it needed SIGTERM, 2 when it needed SIGKILL. */
static int emu_stop(emu *e) {
    if (e->pid <= 0) {
        return 0;
    }
    int how = 0;
    close(e->stdin_fd);
    if (!emu_waitpid(e, 5000)) {
        how = 1;
        kill(e->pid, SIGTERM);
        if (!emu_waitpid(e, 5000)) {
            how = 2;
            kill(e->pid, SIGKILL);
            waitpid(e->pid, NULL, 0);
        }
    }
    close(e->stdout_fd);
    e->pid = 0;
    return how;
}

/* emu_start runs `cli emulator args...`; args is NULL-terminated (may be NULL). 0 on success. */
static int emu_start(emu *e, const char *cli, const char *const *args) {
    int in[2], out[2];
    /* O_CLOEXEC: otherwise every process spawned later (a second emulator, a forked test child)
     * inherits this emulator's stdin write end, so closing ours never delivers EOF and the
     * emulator cannot stop by itself. The dup2 file actions below still give the child its
     * stdin and stdout: dup2 clears FD_CLOEXEC on the new descriptor. */
    if (pipe2(in, O_CLOEXEC) != 0) {
        return -1;
    }
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    const char *argv[16] = {cli, "emulator"};
    int n = 2;
    for (; args && *args && n < 15; args++) {
        argv[n++] = *args;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    int rc = posix_spawn(&e->pid, cli, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        e->pid = 0;
        return -1;
    }
    e->stdin_fd = in[1];
    e->stdout_fd = out[0];
    size_t len = 0;
    while (len + 1 < sizeof e->line) {
        ssize_t r = read(e->stdout_fd, e->line + len, 1);
        if (r <= 0) {
            emu_stop(e); /* it never got ready: do not leave it running */
            return -1;
        }
        if (e->line[len] == '\n') {
            break;
        }
        len++;
    }
    e->line[len] = '\0';
    return 0;
}

/* emu_get copies the string value of "key", looking after the first occurrence of `after` (or
 * from the start when NULL), into out. Returns out, or NULL when absent. */
static char *emu_get(const emu *e, const char *after, const char *key, char *out, size_t n) {
    const char *p = e->line;
    if (after && !(p = strstr(p, after))) {
        return NULL;
    }
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    if (!(p = strstr(p, pat))) {
        return NULL;
    }
    p += strlen(pat);
    size_t i = 0;
    for (; *p && *p != '"' && i + 1 < n; p++) {
        if (*p == '\\' && p[1]) {
            p++;
        }
        out[i++] = *p;
    }
    out[i] = '\0';
    return out;
}

/* emu_setenv exports the emulator's env (its IMDS URL and CA file) into this process. */
static void emu_setenv(const emu *e) {
    char v[4096];
    if (emu_get(e, "\"env\"", "AZURE_POD_IDENTITY_AUTHORITY_HOST", v, sizeof v)) {
        setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", v, 1);
    }
    if (emu_get(e, "\"env\"", "SSL_CERT_FILE", v, sizeof v)) {
        setenv("SSL_CERT_FILE", v, 1);
    }
}

#endif

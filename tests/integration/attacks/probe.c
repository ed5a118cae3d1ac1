/* A static probe run inside containers: what the kernel lets the payload do.
 *
 *   probe keyring           the session keyring: "SERIAL DESCRIPTION"
 *   probe syscall NR [ARG]  a raw system call: "ok RESULT" or "errno N"
 *   probe status            the Seccomp: line of /proc/self/status
 *
 * Arguments are read by strtoll with base 0, so 0x10000000 and -3 both work.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_DESCRIBE 6
#define KEY_SPEC_SESSION_KEYRING -3

static int keyring(void) {
    long serial = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
    if (serial < 0) {
        printf("errno %d\n", errno);
        return 1;
    }
    char description[512] = "";
    if (syscall(SYS_keyctl, KEYCTL_DESCRIBE, serial, description, sizeof description - 1) < 0) {
        printf("%ld errno %d\n", serial, errno);
        return 1;
    }
    printf("%ld %s\n", serial, description);
    return 0;
}

static int raw_syscall(int argc, char **argv) {
    long args[6] = {0};
    long nr = strtol(argv[0], NULL, 0);
    for (int i = 1; i < argc && i <= 6; i++)
        args[i - 1] = (long)strtoll(argv[i], NULL, 0);
    long result = syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
    if (result == -1)
        printf("errno %d\n", errno);
    else
        printf("ok %ld\n", result);
    return 0;
}

static int status(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    if (!f)
        return 1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Seccomp:", 8) == 0)
            fputs(line, stdout);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "keyring") == 0)
        return keyring();
    if (argc >= 3 && strcmp(argv[1], "syscall") == 0)
        return raw_syscall(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
        return status();
    fprintf(stderr, "usage: probe keyring | syscall NR [ARG...] | status\n");
    return 2;
}

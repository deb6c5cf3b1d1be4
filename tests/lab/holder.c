/* A socket holder for tests: listen on 127.0.0.1:PORT, accept COUNT connections,
 * set the options MODE names on each accepted socket (as a server such as
 * redis-server does), print "ready", and hold everything until stdin closes.
 *
 *   holder MODE PORT COUNT
 *
 * MODE: plain, linger0, linger5, keepsys, keepown (TCP_KEEPIDLE 300, KEEPINTVL 100,
 * KEEPCNT 3: redis --tcp-keepalive 300), usertimeout (30000 ms), linger2 (10 s),
 * linger2neg (-1), reuseport (the listener sets SO_REUSEPORT), noreuse (the listener
 * does without SO_REUSEADDR, which every other mode sets).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void opt(int fd, int level, int name, const void *value, socklen_t size) {
    if (setsockopt(fd, level, name, value, size) != 0) { perror("setsockopt"); exit(2); }
}

static void set_int(int fd, int level, int name, int value) {
    opt(fd, level, name, &value, sizeof value);
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: holder MODE PORT COUNT\n"); return 64; }
    const char *mode = argv[1];
    int count = atoi(argv[3]);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (strcmp(mode, "noreuse") != 0) set_int(listener, SOL_SOCKET, SO_REUSEADDR, 1);
    if (strcmp(mode, "reuseport") == 0) set_int(listener, SOL_SOCKET, SO_REUSEPORT, 1);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 128)) {
        perror("bind/listen"); return 2;
    }
    printf("listening\n"); fflush(stdout);
    for (int i = 0; i < count; i++) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) { perror("accept"); return 2; }
        struct linger linger = {1, strcmp(mode, "linger5") == 0 ? 5 : 0};
        if (strncmp(mode, "linger", 6) == 0 && strncmp(mode, "linger2", 7) != 0)
            opt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
        if (strncmp(mode, "keep", 4) == 0) set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
        if (strcmp(mode, "keepown") == 0) {
            set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 300);
            set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, 100);
            set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, 3);
        }
        if (strcmp(mode, "usertimeout") == 0) set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 30000);
        if (strcmp(mode, "linger2") == 0) set_int(fd, IPPROTO_TCP, TCP_LINGER2, 10);
        if (strcmp(mode, "linger2neg") == 0) set_int(fd, IPPROTO_TCP, TCP_LINGER2, -1);
    }
    printf("ready\n"); fflush(stdout);
    char buffer[64];
    while (read(0, buffer, sizeof buffer) > 0) {}
    return 0;
}

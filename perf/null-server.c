/* null-server: the cheapest RESP server we can write, for measuring the harness.
 *
 * It answers every GET with a fixed 32-byte value and every other command with +OK,
 * stores nothing, and serves all connections from one thread with level-triggered
 * epoll: one recv and one send per readable connection per turn, the least work a
 * server on the kernel's TCP stack can do for a request. `perf/ceiling.sh` puts it in
 * the per-core placement beside Redis: whatever it reaches is the most that the
 * generator and loopback can show for any server, ringkv included.
 *
 * Build: cc -O2 -o null-server perf/null-server.c     Run: null-server PORT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_MAX 4096
#define BUF_SIZE 65536

struct conn {
    size_t len;
    char in[BUF_SIZE];
    char out[BUF_SIZE];
};

static struct conn *conns[CONN_MAX];

static const char GET_REPLY[] = "$32\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";

/* Reads "<prefix><digits>\r\n" at p; returns the number and moves *p past it, -1
 * when the line is not complete yet, -2 when p holds another prefix. */
static long number_line(const char **p, const char *end, char prefix) {
    const char *q = *p;
    long n = 0;
    if (q >= end || *q != prefix) return -2;
    for (q++; q < end && *q != '\r'; q++) n = n * 10 + (*q - '0');
    if (q + 1 >= end) return -1;
    *p = q + 2;
    return n;
}

/* Answers every complete command in c->in into out; returns the reply length and
 * keeps an incomplete tail. Returns -1 on input it does not understand. */
static long serve(struct conn *c, char *out) {
    const char *p = c->in, *end = c->in + c->len;
    long used = 0;
    while (p < end) {
        const char *start = p;
        long argc = number_line(&p, end, '*');
        if (argc == -1) break;
        if (argc < 1) return -1;
        int is_get = 0, complete = 1;
        for (long i = 0; i < argc; i++) {
            long len = number_line(&p, end, '$');
            if (len < -1) return -1;
            if (len == -1 || p + len + 2 > end) { complete = 0; break; }
            if (i == 0) is_get = len == 3 && (p[0] | 32) == 'g' && (p[1] | 32) == 'e';
            p += len + 2;
        }
        if (!complete) { p = start; break; }
        const char *reply = is_get ? GET_REPLY : "+OK\r\n";
        size_t n = is_get ? sizeof(GET_REPLY) - 1 : 5;
        if (used + (long)n > BUF_SIZE) { p = start; break; }
        memcpy(out + used, reply, n);
        used += n;
    }
    c->len = (size_t)(end - p);
    memmove(c->in, p, c->len);
    return used;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: null-server PORT\n"); return 2; }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 1024)) {
        perror("null-server: bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= CONN_MAX) { close(cfd); continue; }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[cfd] = calloc(1, sizeof(struct conn));
                    ev.data.fd = cfd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            struct conn *c = conns[fd];
            ssize_t got = recv(fd, c->in + c->len, BUF_SIZE - c->len, 0);
            if (got < 0 && errno == EAGAIN) continue;
            long reply = got > 0 ? (c->len += (size_t)got, serve(c, c->out)) : -1;
            if (reply < 0 || (reply > 0 && send(fd, c->out, (size_t)reply, 0) != reply)) {
                close(fd);
                free(c);
                conns[fd] = NULL;
            }
        }
    }
}

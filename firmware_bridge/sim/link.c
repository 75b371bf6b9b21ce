/* Byte links for ecgsim: stdout, a pseudo-terminal (stands in for a USB-CDC/UART port), or TCP. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define FAIL(...)                                                                             \
    do {                                                                                      \
        snprintf(err, err_len, __VA_ARGS__);                                                  \
        return -1;                                                                            \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int link_setup(sim_link *link, char *err, size_t err_len)
{
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    int one = 1;
    link->fd = -1;
    link->listen_fd = -1;
    if (link->kind != LINK_TCP_LISTEN)
        return 0;
    link->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (link->listen_fd < 0)
        FAIL("socket: %s", strerror(errno));
    setsockopt(link->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)link->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* a simulator has no business off-host */
    if (bind(link->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        FAIL("bind 127.0.0.1:%d: %s", link->port, strerror(errno));
    if (listen(link->listen_fd, 1) != 0)
        FAIL("listen: %s", strerror(errno));
    getsockname(link->listen_fd, (struct sockaddr *)&addr, &addr_len);
    link->port = ntohs(addr.sin_port);
    fprintf(stderr, "LISTEN 127.0.0.1:%d\n", link->port);
    fflush(stderr);
    return 0;
}

/* Raw mode by hand (cfmakeraw is not POSIX): no echo, no line editing, no CR/LF mapping,
 * 8 data bits. A cooked pty would echo the frames back and turn 0x0D into 0x0A. */
static void set_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0)
        return;
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(fd, TCSANOW, &t);
}

/* The master reports POLLHUP while no process holds the slave open. */
static int pty_reader_present(int master)
{
    struct pollfd p;
    p.fd = master;
    p.events = POLLOUT;
    p.revents = 0;
    return poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP);
}

/* Closing the master discards what the reader has not read yet, and the master's own queue
 * (TIOCOUTQ) is always empty on Linux, so look at the slave's input queue through a second
 * slave fd. Wait while the reader makes progress (it may be slower than us), at most 10 s. */
static void pty_drain(int master)
{
    const char *name = ptsname(master);
    int slave = name ? open(name, O_RDWR | O_NOCTTY | O_NONBLOCK) : -1;
    int waited = 0, idle = 0, last = -1, zeros = 0;
    if (slave < 0)
        return;
    while (waited < 10000 && idle < 1000 && zeros < 2) {
        int queued = 0;
        if (ioctl(slave, FIONREAD, &queued) != 0)
            break;
        zeros = queued == 0 ? zeros + 1 : 0; /* twice: bytes may still be on their way in */
        idle = queued == last ? idle + 10 : 0;
        last = queued;
        sleep_ms(10);
        waited += 10;
    }
    close(slave);
}

static int open_pty(sim_link *link, char *err, size_t err_len)
{
    const char *name;
    int slave;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0)
        FAIL("posix_openpt: %s", strerror(errno));
    if (grantpt(master) != 0 || unlockpt(master) != 0 || (name = ptsname(master)) == NULL) {
        close(master);
        FAIL("cannot set up the pty: %s", strerror(errno));
    }
    /* Set raw mode through the slave before anyone reads: the setting outlives this fd
     * because the master keeps the pair alive. */
    slave = open(name, O_RDWR | O_NOCTTY);
    if (slave < 0) {
        close(master);
        FAIL("%s: %s", name, strerror(errno));
    }
    set_raw(slave);
    close(slave);
    fprintf(stderr, "PTY %s\n", name);
    fflush(stderr);
    while (!pty_reader_present(master))
        sleep_ms(5);
    /* Non-blocking, so a reader that goes away while the buffer is full is noticed (POLLHUP)
     * instead of leaving us blocked in write() for ever. */
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    link->fd = master;
    return 0;
}

static int connect_tcp(sim_link *link, char *err, size_t err_len)
{
    struct addrinfo hints, *res, *ai;
    char port[16];
    int tries, rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", link->port);
    rc = getaddrinfo(link->host, port, &hints, &res);
    if (rc != 0)
        FAIL("%s:%d: %s", link->host, link->port, gai_strerror(rc));
    /* The receiver may start a moment after us: retry for about 10 s. */
    for (tries = 0; tries < 200; ++tries) {
        for (ai = res; ai; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
            if (fd < 0)
                continue;
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                freeaddrinfo(res);
                link->fd = fd;
                return 0;
            }
            close(fd);
        }
        sleep_ms(50);
    }
    freeaddrinfo(res);
    FAIL("cannot connect to %s:%d: %s", link->host, link->port, strerror(errno));
}

int link_open(sim_link *link, char *err, size_t err_len)
{
    static const uint8_t delimiter = 0x00;
    switch (link->kind) {
    case LINK_STDOUT:
        link->fd = STDOUT_FILENO;
        break;
    case LINK_PTY:
        if (open_pty(link, err, err_len) != 0)
            return -1;
        break;
    case LINK_TCP_LISTEN:
        do
            link->fd = accept(link->listen_fd, NULL, NULL);
        while (link->fd < 0 && errno == EINTR);
        if (link->fd < 0)
            FAIL("accept: %s", strerror(errno));
        break;
    case LINK_TCP_CONNECT:
        if (connect_tcp(link, err, err_len) != 0)
            return -1;
        break;
    }
    if (!link->quiet && link->kind != LINK_STDOUT)
        fprintf(stderr, "ecgsim: reader connected\n");
    if (link_write(link, &delimiter, 1) != 0)
        FAIL("the reader went away at once");
    return 0;
}

int link_write(sim_link *link, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n;
        if (link->kind == LINK_PTY && !pty_reader_present(link->fd))
            return -1; /* a pty master accepts writes with nobody on the other side */
        n = write(link->fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p;
                p.fd = link->fd;
                p.events = POLLOUT;
                poll(&p, 1, 100);
                continue;
            }
            return -1; /* EPIPE, ECONNRESET, EIO: the reader is gone */
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

void link_close(sim_link *link, int end_of_stream)
{
    if (link->fd < 0)
        return;
    switch (link->kind) {
    case LINK_STDOUT:
        return; /* stdout stays open: a "disconnect" there is silence */
    case LINK_PTY:
        if (end_of_stream)
            pty_drain(link->fd);
        break;
    case LINK_TCP_LISTEN:
    case LINK_TCP_CONNECT:
        shutdown(link->fd, SHUT_WR);
        break;
    }
    close(link->fd);
    link->fd = -1;
}

void link_teardown(sim_link *link)
{
    if (link->listen_fd >= 0)
        close(link->listen_fd);
    link->listen_fd = -1;
}

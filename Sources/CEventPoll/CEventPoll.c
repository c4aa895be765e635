#include "CEventPoll.h"

#include <errno.h>

#ifdef __linux__
#include <sys/epoll.h>

int dsch_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int dsch_epoll_watch(int instance, int descriptor, int add, uint32_t interest, uint64_t token) {
    struct epoll_event event = {0};
    if (interest & dsch_poll_readable) event.events |= EPOLLIN | EPOLLRDHUP;
    if (interest & dsch_poll_writable) event.events |= EPOLLOUT;
    event.data.u64 = token;
    return epoll_ctl(instance, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, descriptor, &event);
}

int dsch_epoll_forget(int instance, int descriptor) {
    struct epoll_event unused = {0};
    return epoll_ctl(instance, EPOLL_CTL_DEL, descriptor, &unused);
}

int dsch_epoll_wait(int instance, uint64_t *tokens, uint32_t *readiness, int capacity, int milliseconds) {
    struct epoll_event events[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(instance, events, capacity, milliseconds);
    if (count < 0) return 0;
    for (int index = 0; index < count; index++) {
        uint32_t flags = events[index].events;
        uint32_t bits = 0;
        if (flags & (EPOLLIN | EPOLLRDHUP)) bits |= dsch_poll_readable;
        if (flags & EPOLLOUT) bits |= dsch_poll_writable;
        if (flags & (EPOLLHUP | EPOLLERR)) bits |= dsch_poll_failed;
        tokens[index] = events[index].data.u64;
        readiness[index] = bits;
    }
    return count;
}

#else

int dsch_epoll_create(void) { errno = ENOSYS; return -1; }
int dsch_epoll_watch(int instance, int descriptor, int add, uint32_t interest, uint64_t token) { errno = ENOSYS; return -1; }
int dsch_epoll_forget(int instance, int descriptor) { errno = ENOSYS; return -1; }
int dsch_epoll_wait(int instance, uint64_t *tokens, uint32_t *readiness, int capacity, int milliseconds) { errno = ENOSYS; return 0; }

#endif

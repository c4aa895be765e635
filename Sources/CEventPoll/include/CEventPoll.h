#ifndef C_EVENT_POLL_H
#define C_EVENT_POLL_H

#include <stdint.h>

// epoll for the HTTP server's event loops. Swift's Glibc module does not include <sys/epoll.h>, and
// `struct epoll_event` is packed on x86-64, so its layout is kept on the C side behind these calls.
// On systems without epoll every call fails with -1.

/// Interest and readiness bits, the same on every architecture.
enum {
    dsch_poll_readable = 1 << 0,
    dsch_poll_writable = 1 << 1,
    /// Hang-up or error: reported whatever the interest, since the next read or write says which.
    dsch_poll_failed = 1 << 2,
};

/// A new epoll instance (close-on-exec), or -1 with errno set.
int dsch_epoll_create(void);

/// Adds (`add` non-zero) or changes `descriptor`'s interest (`dsch_poll_readable` / `dsch_poll_writable`);
/// events carry `token`. 0 on success, -1 with errno set.
int dsch_epoll_watch(int instance, int descriptor, int add, uint32_t interest, uint64_t token);

/// Removes `descriptor` from the instance. 0 on success, -1 with errno set.
int dsch_epoll_forget(int instance, int descriptor);

/// Waits up to `milliseconds` for at most `capacity` ready descriptors; writes their tokens and readiness
/// bits and returns how many (0 on timeout or interruption).
int dsch_epoll_wait(int instance, uint64_t *tokens, uint32_t *readiness, int capacity, int milliseconds);

#endif

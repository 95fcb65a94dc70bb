"""Builds ``ivr.rtp._mmsg``, the native half of :mod:`ivr.rtp.mmsg` (cffi, API mode).

Compiled from source with the machine's C compiler and Python headers, never downloaded:

* ``pip install -e .`` / ``pip install .`` builds it (``setup.py``'s ``cffi_modules``);
* ``python -m ivr.rtp._mmsg_build`` builds it in place, beside this file (``scripts/setup``
  runs it after the install, so a tree whose install predates this module gets it too).

Two functions, both non-blocking (``MSG_DONTWAIT``) and both over many sockets in one call
from Python, so the per-call cost of crossing into C is paid once per batch:

``ivr_send_many``: ``n`` datagrams, datagram ``i`` from socket ``fds[i]`` to the packed
``sockaddr`` at its place in ``addrs``; consecutive datagrams of one socket leave in one
``sendmmsg`` (a partial send is continued; an error ends that socket's run), a lone one
with ``sendto`` (the kernel's path for one message is shorter).  Returns how
many were not sent, their indices in ``unsent`` (the caller sends those with ``sendto``, so
none is lost without being counted).  A negative descriptor is never sent (unsent).

``ivr_recv_many``: from each of ``nfds`` sockets, up to ``per_fd`` datagrams with one
``recvmmsg``, into fixed slots of ``bufsize`` bytes (a longer datagram is truncated, as
``recvfrom(bufsize)`` does) and ``ADDR_STRIDE`` bytes of source address, while slots last.
Returns the number of datagrams; ``out_index`` gives each one's socket (index into ``fds``),
``*fds_done`` how many sockets were read (the rest did not fit), ``*errors`` the sockets
whose read failed with something other than ``EAGAIN`` (an ICMP error from an earlier send).
"""
from __future__ import annotations

from cffi import FFI

CDEF = """
#define IVR_ADDR_STRIDE 32
int ivr_send_many(int n, const int *fds, const char *buf, const int *lens,
                  const char *addrs, const int *addrlens, int *unsent);
int ivr_recv_many(int nfds, const int *fds, int per_fd, int slots, int bufsize, char *buf,
                  char *addrs, int *out_index, int *out_lens, int *out_addrlens,
                  int *fds_done, int *errors);
"""

SOURCE = r"""
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define IVR_ADDR_STRIDE 32
#define IVR_CHUNK 64

int ivr_send_many(int n, const int *fds, const char *buf, const int *lens,
                  const char *addrs, const int *addrlens, int *unsent)
{
    struct mmsghdr msgs[IVR_CHUNK];
    struct iovec iov[IVR_CHUNK];
    size_t off = 0, aoff = 0;
    int nun = 0, i = 0;
    while (i < n) {
        int fd = fds[i], k = 0, sent = 0, j;
        memset(msgs, 0, sizeof(struct mmsghdr) * IVR_CHUNK);
        while (i + k < n && fds[i + k] == fd && k < IVR_CHUNK) {
            int m = i + k;
            iov[k].iov_base = (void *)(buf + off);
            iov[k].iov_len = (size_t)lens[m];
            msgs[k].msg_hdr.msg_name = (void *)(addrs + aoff);
            msgs[k].msg_hdr.msg_namelen = (socklen_t)addrlens[m];
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            off += (size_t)lens[m];
            aoff += (size_t)addrlens[m];
            k++;
        }
        while (fd >= 0 && k == 1 && sent == 0) {
            /* one datagram from this socket (the common case: a socket per stream): sendto,
               whose kernel path is shorter than sendmmsg's for a single message */
            ssize_t r = sendto(fd, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT,
                               (const struct sockaddr *)msgs[0].msg_hdr.msg_name,
                               msgs[0].msg_hdr.msg_namelen);
            if (r < 0 && errno == EINTR)
                continue;
            if (r >= 0)
                sent = 1;
            break;
        }
        while (fd >= 0 && k > 1 && sent < k) {
            int r = sendmmsg(fd, msgs + sent, (unsigned int)(k - sent), MSG_DONTWAIT);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            sent += r;
        }
        for (j = sent; j < k; j++)
            unsent[nun++] = i + j;
        i += k;
    }
    return nun;
}

int ivr_recv_many(int nfds, const int *fds, int per_fd, int slots, int bufsize, char *buf,
                  char *addrs, int *out_index, int *out_lens, int *out_addrlens,
                  int *fds_done, int *errors)
{
    struct mmsghdr msgs[IVR_CHUNK];
    struct iovec iov[IVR_CHUNK];
    int got = 0, f, j;
    if (per_fd > IVR_CHUNK)
        per_fd = IVR_CHUNK;
    *errors = 0;
    for (f = 0; f < nfds; f++) {
        int want = per_fd, r;
        if (slots - got < want)
            break;
        memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)want);
        for (j = 0; j < want; j++) {
            iov[j].iov_base = buf + (size_t)(got + j) * (size_t)bufsize;
            iov[j].iov_len = (size_t)bufsize;
            msgs[j].msg_hdr.msg_name = addrs + (size_t)(got + j) * IVR_ADDR_STRIDE;
            msgs[j].msg_hdr.msg_namelen = IVR_ADDR_STRIDE;
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
        }
        do {
            r = recvmmsg(fds[f], msgs, (unsigned int)want, MSG_DONTWAIT, NULL);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                (*errors)++;
            continue;
        }
        for (j = 0; j < r; j++) {
            out_index[got + j] = f;
            out_lens[got + j] = (int)msgs[j].msg_len;
            out_addrlens[got + j] = (int)msgs[j].msg_hdr.msg_namelen;
        }
        got += r;
    }
    *fds_done = f;
    return got;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("ivr.rtp._mmsg", SOURCE, extra_compile_args=["-O2"])


def build_in_place() -> str:
    """Compile ``ivr/rtp/_mmsg*.so`` beside this file; returns its path."""
    import shutil
    import tempfile
    from pathlib import Path

    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:  # the C file and objects stay out of the tree
        built = Path(ffibuilder.compile(tmpdir=tmp, verbose=False))
        target = here / built.name
        shutil.copyfile(built, target.with_suffix(".tmp"))
        target.with_suffix(".tmp").replace(target)  # atomic: a running process keeps its copy
    return str(target)


if __name__ == "__main__":
    print(build_in_place())

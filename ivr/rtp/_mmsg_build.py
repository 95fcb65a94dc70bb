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

SRTP in the batches (``ivr.rtp.mmsg`` hands over, once, ``ivr_set_srtp``, the addresses of
``srtp_protect``, ``srtp_unprotect``, ``srtp_protect_rtcp`` and ``srtp_unprotect_rtcp`` in
pylibsrtp's own libsrtp: nothing here links libsrtp or does any cryptography, and each
``srtp_t`` is served by the library copy that created it):

``ivr_send_many_srtp``: ``ivr_send_many`` where datagram ``i`` is first protected in place
in a work buffer with the libsrtp session ``ctxs[i]`` (0: sent as it is); a packet libsrtp
refuses is not sent, its status returned.

``ivr_recv_many_srtp``: ``ivr_recv_many``, then each datagram from a socket with a session
whose first byte is 128..191 (RFC 7983; STUN and DTLS untouched) is unprotected in place,
SRTCP when muxed RTCP (second byte 192..223, as ``ivr.rtp.packet.is_rtcp``); a status per
datagram says what was done or libsrtp's refusal.
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
#define IVR_SRTP_ROOM 160
#define IVR_SRTP_MAX_PACKET 1500
#define IVR_SRTP_TOO_LONG 1
void ivr_set_srtp(uintptr_t protect, uintptr_t unprotect, uintptr_t protect_rtcp,
                  uintptr_t unprotect_rtcp);
int ivr_send_many_srtp(int n, int *fds, const char *buf, const int *lens,
                       const char *addrs, const int *addrlens, const uintptr_t *ctxs,
                       char *work, int *out_offs, int *out_lens, int *status, int *unsent);
int ivr_recv_many_srtp(int nfds, const int *fds, const uintptr_t *ctxs, int per_fd, int slots,
                       int bufsize, char *buf, char *addrs, int *out_index, int *out_lens,
                       int *out_addrlens, int *out_status, int *fds_done, int *errors);
"""

SOURCE = r"""
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <stdint.h>

#define IVR_ADDR_STRIDE 32
#define IVR_CHUNK 64
#define IVR_SKIP (-2)
#define IVR_SRTP_ROOM 160
#define IVR_SRTP_MAX_PACKET 1500
#define IVR_SRTP_TOO_LONG 1

int ivr_recv_many(int nfds, const int *fds, int per_fd, int slots, int bufsize, char *buf,
                  char *addrs, int *out_index, int *out_lens, int *out_addrlens,
                  int *fds_done, int *errors);

/* The send loop of both senders: datagram i is lens[i] bytes at buf + offs[i] (offs NULL:
   one after the other from buf).  A datagram whose descriptor is IVR_SKIP (its protection
   failed) is neither sent nor reported unsent: the caller counted it already. */
static int send_core(int n, const int *fds, const char *buf, const int *offs, const int *lens,
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
            if (offs != NULL)
                off = (size_t)offs[m];
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
        if (fd != IVR_SKIP)
            for (j = sent; j < k; j++)
                unsent[nun++] = i + j;
        i += k;
    }
    return nun;
}

int ivr_send_many(int n, const int *fds, const char *buf, const int *lens,
                  const char *addrs, const int *addrlens, int *unsent)
{
    return send_core(n, fds, buf, NULL, lens, addrs, addrlens, unsent);
}

/* ---------------------------------------------------------------- SRTP (RFC 3711)
   libsrtp's own entry points, as pylibsrtp's copy of the library exports them (handed over
   once by ivr.rtp.mmsg): the library that created each srtp_t does its work; nothing here
   is cryptography.  libsrtp 2: status = f(srtp_t, void *packet, int *len), in place, with
   room for the trailer (tag, SRTCP index, MKI) after the packet. */
typedef int (*ivr_srtp_fn)(void *ctx, void *packet, int *len);
static ivr_srtp_fn srtp_protect_fn, srtp_unprotect_fn, srtp_protect_rtcp_fn, srtp_unprotect_rtcp_fn;

void ivr_set_srtp(uintptr_t protect, uintptr_t unprotect, uintptr_t protect_rtcp,
                  uintptr_t unprotect_rtcp)
{
    srtp_protect_fn = (ivr_srtp_fn)protect;
    srtp_unprotect_fn = (ivr_srtp_fn)unprotect;
    srtp_protect_rtcp_fn = (ivr_srtp_fn)protect_rtcp;
    srtp_unprotect_rtcp_fn = (ivr_srtp_fn)unprotect_rtcp;
}

/* ivr_send_many with SRTP: datagram i is protected with srtp_protect(ctxs[i]) first (0: sent
   as it is).  Each is copied to its own place in ``work`` (8-byte aligned, IVR_SRTP_ROOM
   bytes of room after it: ``work`` holds sum(lens) + n * (IVR_SRTP_ROOM + 8)), protected
   there, and sent from there; out_offs/out_lens say where it is (for the caller's sendto of
   what was not sent); status[i] is libsrtp's status (0: protected or plain), -1 for a
   packet too short or too long to protect.  A packet whose protection failed is not sent. */
int ivr_send_many_srtp(int n, int *fds, const char *buf, const int *lens,
                       const char *addrs, const int *addrlens, const uintptr_t *ctxs,
                       char *work, int *out_offs, int *out_lens, int *status, int *unsent)
{
    size_t in = 0, off = 0;
    int i;
    for (i = 0; i < n; i++) {
        int len = lens[i];
        void *ctx = (void *)ctxs[i];
        char *p = work + off;
        memcpy(p, buf + in, (size_t)len);
        in += (size_t)len;
        status[i] = 0;
        if (ctx != NULL) {
            if (len < 12 || len > IVR_SRTP_MAX_PACKET - IVR_SRTP_ROOM || srtp_protect_fn == NULL)
                status[i] = -1;
            else
                status[i] = srtp_protect_fn(ctx, p, &len);
            if (status[i] != 0) {
                fds[i] = IVR_SKIP;
                len = 0;
            }
        }
        out_offs[i] = (int)off;
        out_lens[i] = len;
        off = (off + (size_t)len + 7) & ~(size_t)7;
    }
    return send_core(n, fds, work, out_offs, out_lens, addrs, addrlens, unsent);
}

/* ivr_recv_many, then SRTP/SRTCP unprotect in place of each datagram read from a socket
   whose ctxs[index] is not 0 and whose first byte is 128..191 (RTP version 2; RFC 7983:
   STUN and DTLS are left as they are, for the caller's demultiplexer).  RTCP muxed on the
   port (second byte 192..223, RFC 5761, as ivr.rtp.packet.is_rtcp) gets srtp_unprotect_rtcp.
   out_status per datagram: 0 untouched, 1 RTP unprotected, 2 RTCP unprotected, -status on a
   failure (libsrtp's status; -IVR_SRTP_TOO_LONG for a datagram longer than
   IVR_SRTP_MAX_PACKET); out_lens is the plain length after unprotecting. */
int ivr_recv_many_srtp(int nfds, const int *fds, const uintptr_t *ctxs, int per_fd, int slots,
                       int bufsize, char *buf, char *addrs, int *out_index, int *out_lens,
                       int *out_addrlens, int *out_status, int *fds_done, int *errors)
{
    int got = ivr_recv_many(nfds, fds, per_fd, slots, bufsize, buf, addrs, out_index, out_lens,
                            out_addrlens, fds_done, errors);
    int s;
    for (s = 0; s < got; s++) {
        void *ctx = (void *)ctxs[out_index[s]];
        unsigned char *p = (unsigned char *)buf + (size_t)s * (size_t)bufsize;
        int len = out_lens[s], rc;
        out_status[s] = 0;
        if (ctx == NULL || len < 1 || p[0] < 128 || p[0] > 191)
            continue;
        if (len > IVR_SRTP_MAX_PACKET || len > bufsize || srtp_unprotect_fn == NULL) {
            out_status[s] = -IVR_SRTP_TOO_LONG;
            continue;
        }
        if (len >= 2 && p[1] >= 192 && p[1] <= 223) {
            rc = srtp_unprotect_rtcp_fn(ctx, p, &len);
            out_status[s] = rc ? -rc : 2;
        } else {
            rc = srtp_unprotect_fn(ctx, p, &len);
            out_status[s] = rc ? -rc : 1;
        }
        if (rc == 0)
            out_lens[s] = len;
    }
    return got;
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

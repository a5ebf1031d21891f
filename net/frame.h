/* net/frame.h — encode and decode seqd frames (format: proto.h).
 *
 * frame_decode works incrementally on an evbuffer: it peeks the header with
 * evbuffer_copyout, checks the length against the maximum before anything
 * else, and removes the frame only once it is whole. A framing error leaves
 * the buffer as it was; the caller answers with MSG_ERROR and closes.
 * frame_parse / frame_pack are the same codec over plain memory (tests,
 * the simulator).
 */
#ifndef SEQD_FRAME_H
#define SEQD_FRAME_H

#include "../proto.h"

struct evbuffer;

#define FRAME_OK 1          /* one message decoded and removed */
#define FRAME_NEED_MORE 0   /* not a whole frame yet */
/* Negative returns are -(enum seqd_ferr), checked in this order:
 *   -FERR_TOO_LONG  length prefix > SEQD_MAX_FRAME - 4 (refused as soon as
 *                   the 4 prefix bytes are there)
 *   -FERR_SHORT     length prefix < 12 (shorter than the header)
 *   -FERR_VERSION, -FERR_TYPE (0 or > MSG_TYPE_MAX), -FERR_FLAGS (non-zero);
 *                   each refused as soon as its header byte is there
 *   -FERR_SHORT     payload shorter than the type needs (a name/text/addr
 *                   length or a snapshot entry running past the end, fewer
 *                   snapshot entries than n_entries)
 *   -FERR_LONG      bytes left after the type's fields, or a name_len (also
 *                   in a snapshot entry) > SEQD_NAME_MAX, or an err text_len
 *                   > SEQD_TEXT_MAX: they could not be held / re-packed.
 * Names with bad characters or of length 0 decode fine: the meaning is
 * checked by seqd_name_valid where the request is answered. */

/* Decodes one frame from `in` into `out`. `scratch` (SEQD_MAX_FRAME bytes)
 * receives the frame; pointers in `out` refer into it. */
int frame_decode(struct evbuffer *in, seqd_msg *out, uint8_t *scratch);

/* Takes the next whole frame and the `trailer` bytes that follow it (a
 * MAC tag, net/mac.h) out of `in` into scratch (SEQD_MAX_FRAME + trailer
 * bytes), without parsing it: FRAME_OK with *flen the frame's size (the
 * trailer is at scratch + *flen), FRAME_NEED_MORE, or the -ferr of a
 * header error (frame_decode's checks and order). Only FRAME_OK drains. */
int frame_take(struct evbuffer *in, uint8_t *scratch, size_t trailer, size_t *flen);

/* Parses one whole frame held in buf[0..len) (len = the frame's size).
 * Returns FRAME_OK, FRAME_NEED_MORE if len is short of the frame, or -ferr.
 * Bytes past the frame's size (from its own prefix) are ignored. Names are
 * copied into out; err text, hello addr and snapshot entries point into buf
 * (snapshot entries are fully validated: walk them with snap_entry_next). */
int frame_parse(const uint8_t *buf, size_t len, seqd_msg *out);

/* Serializes m into buf (SEQD_MAX_FRAME bytes). Returns the frame's size, or
 * 0 if m would not fit in a frame (too many snapshot bytes, text too long),
 * or would not decode: unknown type, name len > SEQD_NAME_MAX, text len >
 * SEQD_TEXT_MAX, NULL text/addr with a non-zero length, snapshot entries
 * that are not exactly u.snap.n well-formed entries of entries_len bytes.
 * The header's flags are always 0. Writes only the frame's size bytes. */
size_t frame_pack(const seqd_msg *m, uint8_t *buf);

/* The size frame_pack would give m (0: it does not fit), without packing. */
size_t frame_size(const seqd_msg *m);

/* frame_pack + evbuffer_add. Returns 0, or -1 if m does not fit or on OOM. */
int frame_encode(struct evbuffer *out, const seqd_msg *m);

/* Human-readable names, for logs and error lines. */
const char *frame_err_str(int ferr);     /* enum seqd_ferr, or its negative */
const char *seqd_err_str(int err);      /* enum seqd_err */
const char *msg_type_str(int type);

#endif

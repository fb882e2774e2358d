/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The wire encoding of kactor values: MessagePack (msgpack-c), with three extension types.
 *
 *   nil, bool, int64, double, str, bin, array, map (string keys)  -> the msgpack types
 *   object reference  -> ext 1, 16 bytes: id.hi then id.lo, big-endian
 *   actor handle      -> ext 2, 16 bytes: the same
 *   error             -> ext 3: 1 byte kactor_error code, then the message (UTF-8, no NUL)
 *
 * Decoding is strict: unknown ext types, non-string map keys, uint64 above INT64_MAX, nesting
 * deeper than CODEC_MAX_DEPTH, and ext payloads of the wrong size are -EBADMSG.
 */

#include <msgpack.h>

#include "kactor/value.h"

#define CODEC_EXT_OBJECT 1
#define CODEC_EXT_ACTOR 2
#define CODEC_EXT_ERROR 3
#define CODEC_MAX_DEPTH 32 /* msgpack-c's unpacker holds at most 32 open containers */

/* Packs v with pk. Returns 0 or -ENOMEM (or -EINVAL for an invalid value). */
int codec_pack_value(msgpack_packer *pk, const kactor_value *v);

/* Builds a value from an unpacked msgpack object. Returns 0 or -EBADMSG / -ENOMEM. */
int codec_value_from_object(const msgpack_object *o, kactor_value **ret);

/* Encodes into a malloc'd buffer / decodes exactly one value that must fill the buffer. */
int codec_encode(const kactor_value *v, char **ret_buf, size_t *ret_len);
int codec_decode(const void *buf, size_t len, kactor_value **ret);

/* Ids inside an ext payload. */
void codec_id_to_bytes(kactor_id id, uint8_t out[16]);
kactor_id codec_id_from_bytes(const uint8_t in[16]);
/* Packs an id as ext `type` (CODEC_EXT_OBJECT or CODEC_EXT_ACTOR). */
int codec_pack_id(msgpack_packer *pk, int8_t type, kactor_id id);
/* Packs n unsigned 32-bit numbers (uids, gids, GPU ids) as a list. 0 or -ENOMEM. */
int codec_pack_u32_list(msgpack_packer *pk, const uint32_t *v, size_t n);
/* Reads an id from a msgpack ext object of `type`; -EBADMSG when it is something else. */
int codec_object_to_id(const msgpack_object *o, int8_t type, kactor_id *ret);

/*
 * Walks an unpacked msgpack value (already known to be well-formed, or checked with
 * codec_validate()) and calls fn for each object reference and actor handle in it, at any depth.
 * `top` is true for an element of the top-level list. Stops and returns fn's value when it is
 * negative. Returns the number of ids found otherwise.
 */
typedef int (*codec_id_fn)(int8_t type, kactor_id id, bool top, void *userdata);
int codec_foreach_id(const msgpack_object *o, codec_id_fn fn, void *userdata);
/*
 * Collects the ids a packed value names (results, arguments), in the order codec_foreach_id() finds
 * them: *ret_ids and *ret_actor (1 for an actor handle) are malloc'd arrays of *ret_n entries, NULL
 * when there are none. *ret_top_refs (optional) says whether an element of the top-level list is an
 * object reference. 0, or -EBADMSG for a malformed value, -ENOMEM.
 */
int codec_scan_ids(const char *data, size_t len, kactor_id **ret_ids, uint8_t **ret_actor, size_t *ret_n,
                   bool *ret_top_refs);

/*
 * Checks, before msgpack-c sees untrusted bytes, that the value at the start of buf announces no more
 * elements than there are bytes left and nests no deeper than the limit: msgpack-c allocates what a
 * header announces before reading it. With ret_len, returns the value's length (more may follow);
 * without, the value must fill buf. 0 or -EBADMSG.
 */
int codec_check_bounds(const void *buf, size_t len, size_t *ret_len);

/* Whether v names an object or an actor (a reference or a handle), at any depth. */
bool codec_value_names_ids(const kactor_value *v);

/* Checks that o is a valid kactor value (the rules above). 0 or -EBADMSG. */
int codec_validate(const msgpack_object *o);

static inline void kactor_value_freep(kactor_value **v) {
        kactor_value_free(*v);
}

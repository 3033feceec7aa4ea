/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * gomap.h: finding one entry of a net/http.Header (map[string][]string) in
 * the traced process, for the W3C trace-context headers.
 *
 * Go has had two map implementations:
 *
 *   - Go 1.12-1.23 (and later releases built with GOEXPERIMENT=noswissmap):
 *     runtime.hmap, an array of 2^B buckets (and, while the map grows, the
 *     old array it is moving from). A bucket is tophash [8]uint8, then the 8
 *     keys, then the 8 elems, then the overflow bucket pointer.
 *   - Go 1.24+: swiss tables (internal/runtime/maps.Map). A map of at most
 *     8 entries is one group at dirPtr (dirLen 0); a larger one is a
 *     directory of dirLen *table, each an array of lengthMask+1 groups. A
 *     group is a control word (one byte per slot: 0x80 empty, 0xfe deleted,
 *     the top bit clear for a full slot), then 8 slots of {key, elem}.
 *
 * The header fields (hmap.B, Map.dirPtr, ...) come from the offset database
 * or DWARF like every other field. The bucket and group layouts for string
 * keys and []string elems follow from the sizes of those two types (16 and
 * 24 bytes on 64-bit targets), which the language fixes; the compiler lays
 * the generated bucket and group structs out from them with no padding.
 *
 * Reading is bounded (buckets, overflow chains, tables and groups) so a
 * map larger than any request's headers is searched only in part: the
 * header is then reported not found, never misread.
 */
#ifndef OFFSETDB_GOMAP_H
#define OFFSETDB_GOMAP_H

#include "runtime.h"

/* The offsets of the map header fields an object needs; OFFSET_ABSENT where the release lacks them. */
struct gomap_offsets {
	__u64 hmap_B, hmap_buckets, hmap_oldbuckets;                     /* Go 1.12-1.23 */
	__u64 map_dirPtr, map_dirLen, table_groups, groups_data, groups_lengthMask; /* Go 1.24+ */
};

/* map[string][]string, Go 1.12-1.23: a bucket. */
#define HMAP_BUCKET_KEYS 8                          /* after tophash [8]uint8 */
#define HMAP_BUCKET_ELEMS (8 + 8 * 16)              /* after the 8 keys */
#define HMAP_BUCKET_OVERFLOW (8 + 8 * 16 + 8 * 24)  /* the overflow pointer */
#define HMAP_BUCKET_SIZE (HMAP_BUCKET_OVERFLOW + 8)
#define HMAP_MIN_TOPHASH 5 /* below: empty or evacuated */

/* map[string][]string, Go 1.24+: a group. */
#define SWISS_SLOT_SIZE (16 + 24)
#define SWISS_SLOT_ELEM 16
#define SWISS_GROUP_SIZE (8 + 8 * SWISS_SLOT_SIZE)

/* How much of a map is searched. */
#define GOMAP_MAX_BUCKETS 16  /* B <= 4: 128 entries before overflow */
#define GOMAP_MAX_OVERFLOW 2  /* overflow buckets followed per bucket */
#define GOMAP_MAX_TABLES 4
#define GOMAP_MAX_GROUPS 16   /* per table */

/* The header names gomap_find_header looks for, in canonical form. */
#define GOMAP_KEY_TRACEPARENT 0 /* "Traceparent" */
#define GOMAP_KEY_TRACESTATE 1  /* "Tracestate" */
#define GOMAP_KEY_USER_AGENT 2  /* "User-Agent" */

/* What gomap_find_header found: the []string of the header. */
struct go_strings {
	__u64 ptr; /* of the first Go string header */
	__s64 len;
};

/*
 * gomap_key_matches reports whether the Go string (ptr, len) in the traced
 * process is the header name which (GOMAP_KEY_*).
 */
static __always_inline int gomap_key_matches(__u64 ptr, __s64 len, __u32 which)
{
	const char traceparent[] = "Traceparent";
	const char tracestate[] = "Tracestate";
	const char user_agent[] = "User-Agent";
	__u8 buf[12] = {};
	if (which == GOMAP_KEY_TRACEPARENT) {
		if (len != 11 || bpf_probe_read_user(buf, 11, (const void *)ptr) != 0)
			return 0;
#pragma unroll
		for (int i = 0; i < 11; i++)
			if (buf[i] != traceparent[i])
				return 0;
		return 1;
	}
	if (len != 10 || bpf_probe_read_user(buf, 10, (const void *)ptr) != 0)
		return 0;
	const char *want = which == GOMAP_KEY_USER_AGENT ? user_agent : tracestate;
#pragma unroll
	for (int i = 0; i < 10; i++)
		if (buf[i] != want[i])
			return 0;
	return 1;
}

/*
 * The per-bucket and per-group searches are global functions, which the
 * verifier checks once rather than at each of the dozens of places the
 * bounded walks call them from; they take and return plain numbers.
 */

/*
 * gomap_bucket_find searches one hmap bucket at b (not its overflow chain)
 * for the header which and returns the address of its elem (a []string
 * header), or 0.
 */
__noinline __u64 gomap_bucket_find(__u64 b, __u32 which)
{
	struct {
		__u8 tophash[8];
		struct go_string keys[8];
	} head;
	if (b == 0 || bpf_probe_read_user(&head, sizeof(head), (const void *)b) != 0)
		return 0;
	for (int i = 0; i < 8; i++) {
		if (head.tophash[i] < HMAP_MIN_TOPHASH)
			continue;
		if (gomap_key_matches(head.keys[i].ptr, head.keys[i].len, which))
			return b + HMAP_BUCKET_ELEMS + (__u64)i * 24;
	}
	return 0;
}

/*
 * gomap_group_find searches the swiss-table group at grp for the header
 * which and returns the address of its elem (a []string header), or 0.
 */
__noinline __u64 gomap_group_find(__u64 grp, __u32 which)
{
	__u64 ctrl = 0;
	if (grp == 0 || bpf_probe_read_user(&ctrl, sizeof(ctrl), (const void *)grp) != 0)
		return 0;
	for (int i = 0; i < 8; i++) {
		if ((ctrl >> (8 * i)) & 0x80)
			continue; /* empty or deleted */
		__u64 slot = grp + 8 + (__u64)i * SWISS_SLOT_SIZE;
		struct go_string k = {};
		if (bpf_probe_read_user(&k, sizeof(k), (const void *)slot) != 0)
			continue;
		if (gomap_key_matches(k.ptr, k.len, which))
			return slot + SWISS_SLOT_ELEM;
	}
	return 0;
}

/* gomap_hmap_array_find searches the n buckets at arr and their overflow chains. */
static __always_inline __u64 gomap_hmap_array_find(__u64 arr, __u64 n, __u32 which)
{
	for (int i = 0; i < GOMAP_MAX_BUCKETS; i++) {
		if (i >= n || arr == 0)
			break;
		__u64 b = arr + (__u64)i * HMAP_BUCKET_SIZE;
		for (int j = 0; j <= GOMAP_MAX_OVERFLOW && b; j++) {
			__u64 e = gomap_bucket_find(b, which);
			if (e)
				return e;
			b = read_u64(b + HMAP_BUCKET_OVERFLOW);
		}
	}
	return 0;
}

/*
 * gomap_find_header finds the header which (GOMAP_KEY_*) in the
 * map[string][]string whose map header is at m (the value of a
 * net/http.Header: a *hmap or a *maps.Map). It returns 1 and fills *out
 * with the entry's []string when found within the search bounds, else 0.
 */
static __always_inline int gomap_find_header(__u64 m, const struct gomap_offsets *o, __u32 which, struct go_strings *out)
{
	if (m == 0)
		return 0;
	__u64 e = 0;
	if (o->map_dirPtr != OFFSET_ABSENT && o->map_dirLen != OFFSET_ABSENT) {
		__u64 dir = read_u64(m + o->map_dirPtr);
		__s64 dirlen = (__s64)read_u64(m + o->map_dirLen);
		if (dir == 0)
			return 0;
		if (dirlen == 0) {
			e = gomap_group_find(dir, which);
		} else if (o->table_groups != OFFSET_ABSENT && o->groups_data != OFFSET_ABSENT && o->groups_lengthMask != OFFSET_ABSENT) {
			__u64 prev = 0;
			for (int t = 0; t < GOMAP_MAX_TABLES && !e; t++) {
				if (t >= dirlen)
					break;
				__u64 tab = read_u64(dir + (__u64)t * 8);
				if (tab == 0 || tab == prev) /* directory entries repeat a table */
					continue;
				prev = tab;
				__u64 groups = read_u64(tab + o->table_groups + o->groups_data);
				__u64 mask = read_u64(tab + o->table_groups + o->groups_lengthMask);
				for (int g = 0; g < GOMAP_MAX_GROUPS && !e; g++) {
					if (g > mask || groups == 0)
						break;
					e = gomap_group_find(groups + (__u64)g * SWISS_GROUP_SIZE, which);
				}
			}
		}
	} else if (o->hmap_B != OFFSET_ABSENT && o->hmap_buckets != OFFSET_ABSENT) {
		__u8 B = 0;
		if (bpf_probe_read_user(&B, 1, (const void *)(m + o->hmap_B)) != 0 || B > 8)
			return 0;
		__u64 n = 1ULL << B;
		e = gomap_hmap_array_find(read_u64(m + o->hmap_buckets), n, which);
		/* While the map grows, entries not yet moved are in the old array, half the size. */
		if (!e && o->hmap_oldbuckets != OFFSET_ABSENT && B > 0)
			e = gomap_hmap_array_find(read_u64(m + o->hmap_oldbuckets), n >> 1, which);
	}
	if (!e)
		return 0;
	struct go_slice v = {};
	if (bpf_probe_read_user(&v, sizeof(v), (const void *)e) != 0)
		return 0;
	out->ptr = v.ptr;
	out->len = v.len;
	return 1;
}

#endif /* OFFSETDB_GOMAP_H */

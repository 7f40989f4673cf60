/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ho_cookie.h - SipHash-2-4 and the probe cookie, compiled into both the XDP
 * program and the native sender so the two can never disagree.
 *
 * Contract: the message is three 64-bit words built from the 16-byte address
 * (as four 32-bit words loaded in host order from network-order memory) and
 * the two ports (as loaded, network order): w0 = a0|a1<<32, w1 = a2|a3<<32,
 * w2 = dport|sport<<16. The cookie is the low 32 bits of SipHash-2-4 over
 * those 24 bytes (little-endian), which is what the reference SipHash returns
 * for the same 24 bytes on a little-endian host.
 * Requires __u64/__u32/__u16 and a definition of HO_INLINE.
 */
#ifndef HO_COOKIE_H
#define HO_COOKIE_H

#define HO_ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))

#define HO_SIPROUND(v0, v1, v2, v3)                                         \
	do {                                                                \
		v0 += v1; v1 = HO_ROTL(v1, 13); v1 ^= v0; v0 = HO_ROTL(v0, 32); \
		v2 += v3; v3 = HO_ROTL(v3, 16); v3 ^= v2;                       \
		v0 += v3; v3 = HO_ROTL(v3, 21); v3 ^= v0;                       \
		v2 += v1; v1 = HO_ROTL(v1, 17); v1 ^= v2; v2 = HO_ROTL(v2, 32); \
	} while (0)

#define HO_SIPBLOCK(v0, v1, v2, v3, m)                                      \
	do {                                                                \
		v3 ^= (m);                                                  \
		HO_SIPROUND(v0, v1, v2, v3);                                \
		HO_SIPROUND(v0, v1, v2, v3);                                \
		v0 ^= (m);                                                  \
	} while (0)

/* SipHash-2-4 over exactly three 64-bit little-endian words (24 bytes). */
HO_INLINE __u64 ho_siphash24_3w(__u64 k0, __u64 k1, __u64 w0, __u64 w1, __u64 w2)
{
	__u64 v0 = k0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = k1 ^ 0x7465646279746573ULL;
	__u64 b = ((__u64)24) << 56;

	HO_SIPBLOCK(v0, v1, v2, v3, w0);
	HO_SIPBLOCK(v0, v1, v2, v3, w1);
	HO_SIPBLOCK(v0, v1, v2, v3, w2);
	HO_SIPBLOCK(v0, v1, v2, v3, b);
	v2 ^= 0xff;
	HO_SIPROUND(v0, v1, v2, v3);
	HO_SIPROUND(v0, v1, v2, v3);
	HO_SIPROUND(v0, v1, v2, v3);
	HO_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* a0..a3: the address words as loaded from network-order memory. */
HO_INLINE __u32 ho_cookie(__u64 k0, __u64 k1, __u32 a0, __u32 a1, __u32 a2, __u32 a3,
			  __u16 dport_be, __u16 sport_be)
{
	__u64 w0 = (__u64)a0 | ((__u64)a1 << 32);
	__u64 w1 = (__u64)a2 | ((__u64)a3 << 32);
	__u64 w2 = (__u64)dport_be | ((__u64)sport_be << 16);

	return (__u32)ho_siphash24_3w(k0, k1, w0, w1, w2);
}

#endif /* HO_COOKIE_H */

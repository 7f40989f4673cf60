/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * halfopen.h - the one contract between the XDP program (halfopen.bpf.c),
 * the native addon (native/) and TypeScript (src/contract.generated.ts,
 * generated from the compiled object's BTF by scripts/gen-contract.js).
 *
 * Contract:
 *  - Userspace fills the probe table (map `probes`, one struct ho_probe per
 *    probe index) before sending; the SYN for index i carries
 *    seq = i ^ ho_cookie(key, addr, dport, sport).
 *  - The XDP program recovers i from a reply (ack - 1 for SYN+ACK/RST, the
 *    quoted seq for ICMP errors), checks it against the table, and records the
 *    first verdict in map `results` with one compare-and-swap on `state`.
 *  - Addresses are 16 bytes in network order; IPv4 is stored IPv4-mapped
 *    (::ffff:a.b.c.d). Ports are stored in network order (__be16).
 *  - All structs are naturally aligned with explicit padding; no implicit holes.
 *  - Constants are enums so they appear in BTF.
 */
#ifndef HALFOPEN_H
#define HALFOPEN_H

enum ho_state {
	HO_STATE_NONE = 0,        /* no verdict yet (or slot unused) */
	HO_STATE_OPEN = 1,        /* SYN+ACK */
	HO_STATE_CLOSED = 2,      /* RST */
	HO_STATE_UNREACHABLE = 3, /* ICMP/ICMPv6 destination unreachable */
};

enum ho_family {
	HO_FAMILY_NONE = 0,       /* empty probe slot: never matches */
	HO_FAMILY_INET = 4,
	HO_FAMILY_INET6 = 6,
};

/* Per-CPU counters, index into map `counters`. */
enum ho_counter {
	HO_CNT_PACKETS = 0,       /* every packet the program saw */
	HO_CNT_CANDIDATES,        /* TCP/ICMP aimed at our source-port range */
	HO_CNT_SYNACK,            /* valid first SYN+ACK */
	HO_CNT_RST,               /* valid first RST */
	HO_CNT_ICMP,              /* valid first ICMP unreachable */
	HO_CNT_DUPLICATE,         /* valid reply for a probe that already had a verdict */
	HO_CNT_BAD_COOKIE,        /* candidate whose cookie named no probe (index out of range) */
	HO_CNT_BAD_MATCH,         /* cookie named a probe but address/ports differ */
	HO_CNT_MALFORMED,         /* truncated or otherwise unparsable candidate */
	HO_CNT_RINGBUF_FULL,      /* verdict recorded but its event could not be queued */
	HO_CNT_RST_SENT,          /* SYN+ACK turned into an RST and sent back by XDP_TX */
	HO_CNT_MAX,
};

/* Who answers a valid SYN+ACK with the RST: the program's cfg_rst_tx. */
enum ho_rst_mode {
	HO_RST_KERNEL = 0,        /* XDP_PASS: the kernel finds no socket and resets */
	HO_RST_XDP_SKB = 1,       /* XDP_TX, generic mode: the skb keeps its checksum state */
	HO_RST_XDP_FRAME = 2,     /* XDP_TX, native mode: the frame leaves without it */
};

/* Sizes userspace relies on. */
enum ho_sizes {
	HO_PROBE_SIZE = 24,
	HO_RESULT_SIZE = 32,
	HO_EVENT_SIZE = 4,
	HO_KEY_SIZE = 16,
};

/* reply flags, struct ho_result.flags */
enum ho_result_flags {
	HO_RF_ACK_MATCH = 1,      /* RST carried ACK = seq+1 (reply to our SYN) */
};

/* One probe: written by userspace, read by XDP. */
struct ho_probe {
	__u8 addr[16];            /* target address, network order, IPv4-mapped for v4 */
	__be16 dport;             /* target port */
	__be16 sport;             /* our source port, inside [sport_lo, sport_hi] */
	__u8 family;              /* enum ho_family; HO_FAMILY_NONE = unused slot */
	__u8 _pad[3];
};

/* One verdict. `sent_ns` is written by the sender, everything else by XDP. */
struct ho_result {
	__u64 sent_ns;            /* CLOCK_MONOTONIC of the latest SYN for this probe */
	__u64 reply_ns;           /* bpf_ktime_get_ns() of the first valid reply */
	__u32 state;              /* enum ho_state, set once (cmpxchg from NONE) */
	__u32 replies;            /* valid replies seen, including duplicates */
	__u8 ttl;                 /* IPv4 TTL / IPv6 hop limit of the first reply */
	__u8 icmp_type;           /* for HO_STATE_UNREACHABLE */
	__u8 icmp_code;
	__u8 flags;               /* enum ho_result_flags */
	__u32 _pad;
};

/* The per-run 128-bit SipHash key, as two little-endian 64-bit halves. */
struct ho_key {
	__u64 k0;
	__u64 k1;
};

#ifdef __cplusplus
#define HO_STATIC_ASSERT static_assert
#else
#define HO_STATIC_ASSERT _Static_assert
#endif
HO_STATIC_ASSERT(sizeof(struct ho_probe) == HO_PROBE_SIZE, "ho_probe layout");
HO_STATIC_ASSERT(sizeof(struct ho_result) == HO_RESULT_SIZE, "ho_result layout");
HO_STATIC_ASSERT(sizeof(struct ho_key) == HO_KEY_SIZE, "ho_key layout");

#endif /* HALFOPEN_H */

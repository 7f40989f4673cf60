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
 *  - A reply matches on the target's address and port, our source port and
 *    the cookie: the address it is sent to (our source) is no part of it, so
 *    probes may leave from any of the host's addresses (a sweep's
 *    --source-ip list, serve's per-backend `source`) and their replies match.
 *  - Addresses are 16 bytes in network order; IPv4 is stored IPv4-mapped
 *    (::ffff:a.b.c.d). Ports are stored in network order (__be16).
 *  - All structs are naturally aligned with explicit padding; no implicit holes.
 *  - Constants are enums so they appear in BTF.
 */
#ifndef HALFOPEN_H
#define HALFOPEN_H

/* results[i].state holds HO_RESULT_PENDING until the first valid reply, then
 * the enum ho_probe_state (below) that reply means: OPEN for a SYN+ACK, CLOSED
 * for an RST, UNREACHABLE for an ICMP error. FILTERED is never recorded: it is
 * userspace's verdict for a probe whose replies never came. One vocabulary, so
 * nothing maps one state enum onto another. */
enum ho_result_state {
	HO_RESULT_PENDING = 0,
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
	__u32 state;              /* enum ho_probe_state, set once (cmpxchg from HO_RESULT_PENDING) */
	__u32 replies;            /* valid replies seen, including duplicates */
	__u8 ttl;                 /* IPv4 TTL / IPv6 hop limit of the first reply */
	__u8 icmp_type;           /* for HO_PROBE_STATE_UNREACHABLE */
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

/*
 * Names both C and TypeScript spell. Each list is an X-macro so one line
 * defines the enumerator (which lands in BTF) and, in C, its text: the text
 * of an enumerator is its name after the prefix, lowercased, '_' -> '-'
 * (HO_REASON_SYN_ACK -> "syn-ack"); scripts/gen-contract.js applies the same
 * rule to the BTF names, so neither side writes the strings by hand.
 */

/* The final state of one probe or check (ndjson "state"). */
#define HO_PROBE_STATE_LIST(X) \
	X(HO_PROBE_STATE_, OPEN, 1) \
	X(HO_PROBE_STATE_, CLOSED, 2) \
	X(HO_PROBE_STATE_, FILTERED, 3) \
	X(HO_PROBE_STATE_, UNREACHABLE, 4)

/* Why (ndjson "reason"). HO_REASON_ICMP is written icmp-<type>-<code>. */
#define HO_REASON_LIST(X) \
	X(HO_REASON_, SYN_ACK, 1)        /* open: SYN+ACK acknowledging our SYN */ \
	X(HO_REASON_, RST, 2)            /* closed: RST+ACK acknowledging our SYN */ \
	X(HO_REASON_, NO_RESPONSE, 3)    /* filtered: nothing before the deadline */ \
	X(HO_REASON_, ICMP, 4)           /* unreachable: an ICMP error quoting our SYN */ \
	X(HO_REASON_, NO_ROUTE, 5)       /* unreachable: the local stack has no route */ \
	X(HO_REASON_, LOCAL_FIREWALL, 6) /* filtered: a local OUTPUT rule refused the SYN */ \
	X(HO_REASON_, DNS_FAILURE, 7)    /* check: the name did not resolve */ \
	X(HO_REASON_, TIMEOUT, 8)        /* check: resolving took the whole deadline */

/* Error codes (HalfopenError.code in TypeScript, the plugin's --json "reason"
 * on UNKNOWN). Their text is the name after "HO_": HO_E_USAGE -> "E_USAGE". */
#define HO_ERROR_LIST(X) \
	X(HO_, E_USAGE, 1)       /* bad command-line input or config value */ \
	X(HO_, E_TARGET, 2)      /* a target, port or exclude spec that does not parse */ \
	X(HO_, E_EMPTY, 3)       /* the target set is empty after excludes */ \
	X(HO_, E_PRIVILEGE, 4)   /* a missing capability */ \
	X(HO_, E_INTERFACE, 5)   /* unknown interface or no route to a target */ \
	X(HO_, E_RESOLVE, 6)     /* a host name did not resolve */ \
	X(HO_, E_BPF, 7)         /* libbpf or kernel failure (load, attach, map) */ \
	X(HO_, E_VERIFIER, 8)    /* the verifier rejected the program; the error's log holds its output */ \
	X(HO_, E_SEND, 9)        /* the SYN sender failed */ \
	X(HO_, E_CONFIG, 10)     /* a config file is invalid */ \
	X(HO_, E_MERGE, 11)      /* merge: the shards do not make one complete sweep */ \
	X(HO_, E_INTERNAL, 12) \
	X(HO_, E_BUSY, 13)       /* serve: every slot kept for probes on request (/probe) is in use */ \
	X(HO_, E_REFUSED, 14)    /* probing on request refused: outside an allow list, or over its cap (plugin.learn) */

#define HO_ENUMERATOR(prefix, name, value) prefix##name = value,
enum ho_probe_state { HO_PROBE_STATE_LIST(HO_ENUMERATOR) };
enum ho_reason { HO_REASON_LIST(HO_ENUMERATOR) };
/* HO_E_NONE: no error (C only; it has no text). */
enum ho_error { HO_E_NONE = 0, HO_ERROR_LIST(HO_ENUMERATOR) };

/* The reason of a state the XDP program records, by state: results carry no
 * reason of their own (ICMP's is written icmp-<type>-<code> from the result). */
enum ho_recorded_reason {
	HO_RECORDED_REASON_OPEN = HO_REASON_SYN_ACK,
	HO_RECORDED_REASON_CLOSED = HO_REASON_RST,
	HO_RECORDED_REASON_UNREACHABLE = HO_REASON_ICMP,
};

/* The sender's control block: int64 slots of one shared array, read and
 * written by every sender thread (native/addon/sender.cc) and the main thread
 * (src/engine/control.ts). */
enum ho_control {
	HO_CTL_TAT_PS = 0,        /* pacing: theoretical arrival time of the next packet, ps since HO_CTL_BASE_NS */
	HO_CTL_INTERVAL_PS = 1,   /* pacing: picoseconds per packet; 0 = unpaced */
	HO_CTL_ABORT = 2,         /* non-zero: senders stop at the next batch */
	HO_CTL_SENT = 3,          /* packets handed to the kernel, all senders */
	HO_CTL_BASE_NS = 4,       /* CLOCK_MONOTONIC origin of HO_CTL_TAT_PS */
	HO_CTL_FAILED = 5,        /* packets the kernel refused, all senders */
	HO_CTL_SLOTS = 8,
};

/* check_tcp_half_open / halfopen check: Nagios exit codes and limits. */
enum ho_check_exit {
	HO_CHECK_OK = 0,
	HO_CHECK_WARNING = 1,     /* response time above -w */
	HO_CHECK_CRITICAL = 2,    /* closed, filtered, unreachable, unresolved, or above -c */
	HO_CHECK_UNKNOWN = 3,     /* usage or privilege error */
};

enum ho_check_limits {
	HO_CHECK_TIMEOUT_S = 5,          /* default -t */
	HO_CHECK_MAX_TIMEOUT_S = 3600,   /* largest -t, -w, -c */
	HO_CHECK_FIRST_RETRY_MS = 200,   /* a silent SYN is resent after this, then doubling */
	HO_CHECK_MAX_ATTEMPTS = 16,      /* SYNs per check at most */
};

#ifdef __bpf__
/* The program names none of these: anchors keep them in the object's BTF. */
const volatile enum ho_probe_state ho_btf_probe_state_anchor;
const volatile enum ho_recorded_reason ho_btf_recorded_reason_anchor;
const volatile enum ho_error ho_btf_error_anchor;
const volatile enum ho_reason ho_btf_reason_anchor;
const volatile enum ho_control ho_btf_control_anchor;
const volatile enum ho_check_exit ho_btf_check_exit_anchor;
const volatile enum ho_check_limits ho_btf_check_limits_anchor;
#endif

#endif /* HALFOPEN_H */

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * halfopen.bpf.c - reply matcher for half-open TCP probes, at XDP or at tc.
 *
 * Sees every packet arriving on the prober's interface. Only TCP segments and
 * ICMP/ICMPv6 errors aimed at our source-port range are examined; everything
 * else goes on untouched. A reply is valid when the probe index its cookie
 * names exists and matches the reply's address and ports exactly.
 *
 * One matcher, match(), parses with a header cursor and records verdicts;
 * two entry points turn its verdict into their hook's action:
 *  - halfopen_xdp, on the XDP hook when it is free (the default);
 *  - halfopen_tc, at tcx ingress when another program holds the XDP hook.
 *
 * Actions (the half-open contract):
 *  - valid SYN+ACK (first or duplicate), with cfg_rst_tx set (enum
 *    ho_rst_mode), XDP only: rewritten in place into the RST the kernel
 *    would send (seq = its ack, no ACK flag) and sent back with XDP_TX.
 *    Userspace picks the mode: by default XDP_TX in generic mode, where it is
 *    the device's own transmit function, and the kernel's RST in native mode,
 *    where XDP_TX is up to the driver (veth drops it unless its peer runs NAPI).
 *  - any other SYN+ACK: passed on (XDP_PASS / TCX_NEXT). No socket owns the
 *    port, so the kernel answers with RST and the backend never holds a
 *    half-open connection.
 *  - valid RST or ICMP unreachable: dropped (consumed, nobody else wants it).
 *  - anything else, including replies to another prober's probes (another
 *    halfopen process has its own key and table: to us they are invalid):
 *    passed on, so that prober's own program sees them.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "halfopen.h"

#define HO_INLINE static __always_inline
#include "ho_cookie.h"

/* <linux/icmp.h> does not build for -target bpf; the 8-byte header is all we need. */
struct ho_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;
};

#define ICMP_DEST_UNREACH 3
#define ICMPV6_DEST_UNREACH 1
#define IPPROTO_ICMPV6_ 58
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IP_MF_OFFSET 0x3fff
#define HO_MAX_VLAN 2
/* tcx return codes (uapi linux/bpf.h since 6.6; the build's headers may be older). */
#define TCX_NEXT_ -1
#define TCX_DROP_ 2

/* Set by userspace between open and load. */
const volatile struct ho_key cfg_key = {};
const volatile __u16 cfg_sport_lo = 0; /* host order, inclusive */
const volatile __u16 cfg_sport_hi = 0;

/* Set by userspace after attach (.bss, mmapped), enum ho_rst_mode: answer
 * valid SYN+ACKs with an XDP_TX RST instead of passing them to the kernel. */
__u32 cfg_rst_tx = HO_RST_KERNEL;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ho_probe);
	__uint(max_entries, 1); /* resized by userspace before load */
} probes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ho_result);
	__uint(max_entries, 1);
} results SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, HO_CNT_MAX);
} counters SEC(".maps");

/* Probe indices whose verdict was just recorded, polled in batches. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Keep the enums in BTF even where no code names them. */
const volatile enum ho_result_state ho_btf_result_state_anchor;
const volatile enum ho_counter ho_btf_counter_anchor;
const volatile enum ho_rst_mode ho_btf_rst_mode_anchor;
const volatile enum ho_family ho_btf_family_anchor;
const volatile enum ho_sizes ho_btf_sizes_anchor;
const volatile enum ho_result_flags ho_btf_flags_anchor;

HO_INLINE void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1;
}

/* A reply in normalised form, filled by the parsers. */
struct reply {
	__u32 a[4];     /* target address words, as loaded (network order) */
	__be16 tport;   /* target port */
	__be16 sport;   /* our source port */
	__u32 seq;      /* the SYN's sequence number, host order */
	__u8 family;
	__u8 state;
	__u8 ttl;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 flags;
	__u8 l3_off;    /* offset of the IP header in the frame */
	__u8 plain_ip;  /* IPv4 without options or IPv6 without extension headers */
};

/*
 * What the matcher decided, for the entry points to turn into their hook's
 * return value. Only a reply that matched our own probe table is ever
 * consumed: everything else goes on to the rest of the stack untouched, so
 * that another prober on the same interface (a second halfopen process, with
 * its own table, key and source ports) sees its replies too.
 */
enum match_verdict {
	MATCH_PASS = 0,   /* not ours, invalid or not a verdict: hand it on */
	MATCH_CONSUME,    /* valid RST or ICMP error for one of our probes: nobody else wants it */
	MATCH_OPEN,       /* valid SYN+ACK (first or duplicate): someone must reset it */
};

HO_INLINE int ours(__be16 port)
{
	__u16 p = bpf_ntohs(port);

	return p >= cfg_sport_lo && p <= cfg_sport_hi;
}

/* Validate the reply against the probe table and record the first verdict.
 * A subprogram, not inlined: the SipHash body then exists once in the image. */
static __noinline int record(struct reply *r)
{
	__u32 idx = r->seq ^ ho_cookie(cfg_key.k0, cfg_key.k1, r->a[0], r->a[1], r->a[2], r->a[3],
				       r->tport, r->sport);
	struct ho_probe *p = bpf_map_lookup_elem(&probes, &idx);
	struct ho_result *res;
	__u32 *w;

	if (!p) {
		count(HO_CNT_BAD_COOKIE);
		return 0;
	}
	w = (__u32 *)p->addr;
	if (p->family != r->family || p->dport != r->tport || p->sport != r->sport ||
	    w[0] != r->a[0] || w[1] != r->a[1] || w[2] != r->a[2] || w[3] != r->a[3]) {
		count(HO_CNT_BAD_MATCH);
		return 0;
	}
	res = bpf_map_lookup_elem(&results, &idx);
	if (!res)
		return 0;
	__sync_fetch_and_add(&res->replies, 1);
	if (__sync_val_compare_and_swap(&res->state, HO_RESULT_PENDING, r->state) != HO_RESULT_PENDING) {
		count(HO_CNT_DUPLICATE);
		return 1;
	}
	res->reply_ns = bpf_ktime_get_ns();
	res->ttl = r->ttl;
	res->icmp_type = r->icmp_type;
	res->icmp_code = r->icmp_code;
	res->flags = r->flags;
	count(r->state == HO_PROBE_STATE_OPEN ? HO_CNT_SYNACK :
	      r->state == HO_PROBE_STATE_CLOSED ? HO_CNT_RST : HO_CNT_ICMP);
	if (bpf_ringbuf_output(&events, &idx, sizeof(idx), BPF_RB_NO_WAKEUP))
		count(HO_CNT_RINGBUF_FULL);
	return 1;
}

/*
 * Header cursor, after xdp-tools' parsing_helpers.h. `pos` is the first byte
 * not parsed yet, `end` the end of the visible packet (xdp_md->data_end or
 * __sk_buff->data_end: the same packet-pointer rules apply at both hooks).
 * Each parse_* helper checks that its whole fixed header lies before `end`,
 * advances `pos` past it and returns it, or returns NULL and leaves `pos`
 * where it was. Nothing here writes to the packet.
 */
struct hdr_cursor {
	void *pos;
	void *end;
};

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

/* Ethernet and up to HO_MAX_VLAN tags; *proto is the EtherType behind them. */
HO_INLINE struct ethhdr *parse_ethhdr(struct hdr_cursor *c, __be16 *proto)
{
	struct ethhdr *eth = c->pos;
	void *pos;
	int i;

	if ((void *)(eth + 1) > c->end)
		return NULL;
	pos = eth + 1;
	*proto = eth->h_proto;
#pragma unroll
	for (i = 0; i < HO_MAX_VLAN; i++) {
		struct vlan_hdr_ *vh = pos;

		if (*proto != bpf_htons(ETH_P_8021Q_) && *proto != bpf_htons(ETH_P_8021AD_))
			break;
		if ((void *)(vh + 1) > c->end)
			return NULL;
		*proto = vh->proto;
		pos = vh + 1;
	}
	c->pos = pos;
	return eth;
}

/* IPv4 including its options (the header's own length, at least 20 bytes). */
HO_INLINE struct iphdr *parse_iphdr(struct hdr_cursor *c)
{
	struct iphdr *ip = c->pos;
	__u32 ihl;

	if ((void *)(ip + 1) > c->end)
		return NULL;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return NULL;
	c->pos += ihl; /* the options' bytes are checked by whoever reads past them */
	return ip;
}

HO_INLINE struct ipv6hdr *parse_ip6hdr(struct hdr_cursor *c)
{
	struct ipv6hdr *ip6 = c->pos;

	if ((void *)(ip6 + 1) > c->end)
		return NULL;
	c->pos = ip6 + 1;
	return ip6;
}

/* The fixed 20 bytes; options are never read. */
HO_INLINE struct tcphdr *parse_tcphdr(struct hdr_cursor *c)
{
	struct tcphdr *th = c->pos;

	if ((void *)(th + 1) > c->end)
		return NULL;
	c->pos = th + 1;
	return th;
}

HO_INLINE struct ho_icmphdr *parse_icmphdr(struct hdr_cursor *c)
{
	struct ho_icmphdr *ic = c->pos;

	if ((void *)(ic + 1) > c->end)
		return NULL;
	c->pos = ic + 1;
	return ic;
}

/* The first 8 bytes of the TCP header quoted in an ICMP error: our SYN. */
struct quoted_tcp {
	__be16 source;
	__be16 dest;
	__be32 seq;
};

HO_INLINE struct quoted_tcp *parse_quoted_tcp(struct hdr_cursor *c)
{
	struct quoted_tcp *q = c->pos;

	if ((void *)(q + 1) > c->end)
		return NULL;
	c->pos = q + 1;
	return q;
}

/* A TCP header that did not fit: malformed only when what is visible is aimed at us. */
HO_INLINE void count_truncated_tcp(struct hdr_cursor *c)
{
	struct tcphdr *th = c->pos;

	if (c->pos + 4 <= c->end && ours(th->dest))
		count(HO_CNT_MALFORMED);
}

/* TCP reply from the target. */
HO_INLINE int on_tcp(struct reply *r, struct tcphdr *th)
{
	if (!ours(th->dest))
		return MATCH_PASS;
	count(HO_CNT_CANDIDATES);
	r->tport = th->source;
	r->sport = th->dest;
	/* Both answers to a SYN acknowledge it: ack = seq + 1. */
	if (!th->ack)
		return MATCH_PASS;
	r->seq = bpf_ntohl(th->ack_seq) - 1;
	if (th->syn && !th->rst) {
		r->state = HO_PROBE_STATE_OPEN;
		return record(r) ? MATCH_OPEN : MATCH_PASS;
	}
	if (th->rst && !th->syn) {
		r->state = HO_PROBE_STATE_CLOSED;
		r->flags = HO_RF_ACK_MATCH;
		return record(r) ? MATCH_CONSUME : MATCH_PASS;
	}
	return MATCH_PASS;
}

HO_INLINE int on_quoted_tcp(struct reply *r, struct quoted_tcp *q)
{
	if (!ours(q->source))
		return MATCH_PASS;
	count(HO_CNT_CANDIDATES);
	r->tport = q->dest;
	r->sport = q->source;
	r->seq = bpf_ntohl(q->seq);
	r->state = HO_PROBE_STATE_UNREACHABLE;
	return record(r) ? MATCH_CONSUME : MATCH_PASS;
}

HO_INLINE int on_icmp4(struct reply *r, struct hdr_cursor *c)
{
	struct ho_icmphdr *ic = parse_icmphdr(c);
	struct iphdr *in;
	struct quoted_tcp *q;

	if (!ic || ic->type != ICMP_DEST_UNREACH)
		return MATCH_PASS;
	in = c->pos;
	if ((void *)(in + 1) > c->end) {
		count(HO_CNT_MALFORMED);
		return MATCH_PASS;
	}
	if (in->protocol != IPPROTO_TCP)
		return MATCH_PASS;
	if (!parse_iphdr(c) || !(q = parse_quoted_tcp(c))) {
		count(HO_CNT_MALFORMED);
		return MATCH_PASS;
	}
	r->icmp_type = ic->type;
	r->icmp_code = ic->code;
	r->a[0] = 0;
	r->a[1] = 0;
	r->a[2] = bpf_htonl(0xffff);
	r->a[3] = in->daddr;
	r->family = HO_FAMILY_INET;
	return on_quoted_tcp(r, q);
}

HO_INLINE int on_icmp6(struct reply *r, struct hdr_cursor *c)
{
	struct ho_icmphdr *ic = parse_icmphdr(c);
	struct ipv6hdr *in;
	struct quoted_tcp *q;

	if (!ic || ic->type != ICMPV6_DEST_UNREACH)
		return MATCH_PASS;
	/* The quoted header and SYN together, before looking at either. */
	if (!(in = parse_ip6hdr(c)) || !(q = parse_quoted_tcp(c))) {
		count(HO_CNT_MALFORMED);
		return MATCH_PASS;
	}
	if (in->nexthdr != IPPROTO_TCP)
		return MATCH_PASS;
	r->icmp_type = ic->type;
	r->icmp_code = ic->code;
	__builtin_memcpy(r->a, &in->daddr, 16);
	r->family = HO_FAMILY_INET6;
	return on_quoted_tcp(r, q);
}

HO_INLINE int on_ipv4(struct reply *r, struct hdr_cursor *c)
{
	struct iphdr *ip = parse_iphdr(c);
	struct tcphdr *th;

	if (!ip)
		return MATCH_PASS;
	/* Replies to a SYN are never fragmented; a fragment is someone else's. */
	if (ip->frag_off & bpf_htons(IP_MF_OFFSET))
		return MATCH_PASS;
	r->ttl = ip->ttl;
	if (ip->protocol == IPPROTO_ICMP)
		return on_icmp4(r, c);
	if (ip->protocol != IPPROTO_TCP)
		return MATCH_PASS;
	if (!(th = parse_tcphdr(c))) {
		count_truncated_tcp(c);
		return MATCH_PASS;
	}
	r->a[0] = 0;
	r->a[1] = 0;
	r->a[2] = bpf_htonl(0xffff);
	r->a[3] = ip->saddr;
	r->family = HO_FAMILY_INET;
	r->plain_ip = ip->ihl == 5;
	return on_tcp(r, th);
}

HO_INLINE int on_ipv6(struct reply *r, struct hdr_cursor *c)
{
	struct ipv6hdr *ip6 = parse_ip6hdr(c);
	struct tcphdr *th;

	if (!ip6)
		return MATCH_PASS;
	r->ttl = ip6->hop_limit;
	/* Replies to our SYNs carry no extension headers; others are not ours. */
	if (ip6->nexthdr == IPPROTO_ICMPV6_)
		return on_icmp6(r, c);
	if (ip6->nexthdr != IPPROTO_TCP)
		return MATCH_PASS;
	if (!(th = parse_tcphdr(c))) {
		count_truncated_tcp(c);
		return MATCH_PASS;
	}
	__builtin_memcpy(r->a, &ip6->saddr, 16);
	r->family = HO_FAMILY_INET6;
	r->plain_ip = 1;
	return on_tcp(r, th);
}

/*
 * The matcher both entry points share: parses the frame in [data, end),
 * validates a candidate reply against the probe table, records the verdict
 * and says what should become of the frame (enum match_verdict). Fills *r,
 * including the IP header's offset for reset().
 */
HO_INLINE int match(void *data, void *end, struct reply *r)
{
	struct hdr_cursor c = { .pos = data, .end = end };
	__be16 proto;

	count(HO_CNT_PACKETS);
	if (!parse_ethhdr(&c, &proto))
		return MATCH_PASS;
	r->l3_off = c.pos - data;
	if (proto == bpf_htons(ETH_P_IP))
		return on_ipv4(r, &c);
	if (proto == bpf_htons(ETH_P_IPV6))
		return on_ipv6(r, &c);
	return MATCH_PASS;
}

/* Ones' complement sum helpers (RFC 1071). Words are summed as loaded, so the
 * byte order of the sum is the packet's; constants go in with bpf_htons. */
HO_INLINE __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

HO_INLINE __u32 csum_words(const __u16 *w, int n)
{
	__u32 s = 0;
	int i;

#pragma unroll
	for (i = 0; i < n; i++)
		s += w[i];
	return s;
}

#define RST_TTL 64

/*
 * Turns the valid SYN+ACK in the frame into the RST the kernel would answer it
 * with (RFC 9293 3.10.7.1: seq = the SYN+ACK's ack, RST alone, no options) and
 * returns XDP_TX. Ethernet and VLAN tags stay, MACs and addresses swap, the
 * frame is trimmed to the bare headers.
 *
 * The TCP checksum: a SYN+ACK the sender's stack handed over unfinished
 * (CHECKSUM_PARTIAL: same host, veth) carries only the pseudo-header sum in
 * its checksum field. In generic mode (HO_RST_XDP_SKB) the skb keeps that mark
 * when it goes back out, so the RST must carry its own pseudo-header sum, for
 * whoever finishes it; were a full checksum to equal that sum by chance (1 in
 * 65,536), the RST would be dropped, and the backend's retransmitted SYN+ACK
 * a second later gets another. In native mode (HO_RST_XDP_FRAME) the frame
 * leaves without any mark and the receiver checks it: always a full checksum.
 *
 * Anything unexpected returns XDP_PASS before the frame is touched, and the
 * kernel sends the RST as it always did. The checks after the trim repeat
 * ones made before it, for the verifier: they cannot fail, and would abort.
 */
HO_INLINE int reset(struct xdp_md *ctx, struct reply *r)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l3 = r->l3_off, l4, hlen, addrs, len_in;
	__be32 seq;
	__be16 sport, dport;
	struct tcphdr *th;
	__u32 pseudo;
	int partial;

	if (l3 > ETH_HLEN + 4 * HO_MAX_VLAN)
		return XDP_PASS;
	l4 = l3 + (r->family == HO_FAMILY_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr));
	th = data + l4;
	if ((void *)(th + 1) > end)
		return XDP_PASS;
	if (r->family == HO_FAMILY_INET) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		addrs = csum_words((__u16 *)&ip->saddr, 4);
		len_in = bpf_ntohs(ip->tot_len) - sizeof(*ip);
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		addrs = csum_words((__u16 *)&ip6->saddr, 16);
		len_in = bpf_ntohs(ip6->payload_len);
	}
	/* The pseudo-header: addresses, protocol, TCP length. */
	partial = cfg_rst_tx == HO_RST_XDP_SKB &&
		  th->check == csum_fold(addrs + bpf_htons(IPPROTO_TCP) + bpf_htons(len_in));
	seq = th->ack_seq;
	sport = th->dest;
	dport = th->source;

	hlen = l4 + sizeof(struct tcphdr);
	if (bpf_xdp_adjust_tail(ctx, (int)hlen - (int)(end - data)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (l3 > ETH_HLEN + 4 * HO_MAX_VLAN)
		return XDP_ABORTED;

	{
		struct ethhdr *eth = data;
		__u8 mac[ETH_ALEN];

		if ((void *)(eth + 1) > end)
			return XDP_ABORTED;
		__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	}
	if (r->family == HO_FAMILY_INET) {
		struct iphdr *ip = data + l3;
		__be32 a;

		if ((void *)(ip + 1) > end)
			return XDP_ABORTED;
		a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(struct tcphdr));
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000); /* DF */
		ip->ttl = RST_TTL;
		/* Summed from the values written, not read back from the frame. */
		ip->check = ~csum_fold(addrs + bpf_htons(0x4500) +
				       bpf_htons(sizeof(*ip) + sizeof(struct tcphdr)) + bpf_htons(0x4000) +
				       bpf_htons(RST_TTL << 8 | IPPROTO_TCP));
	} else {
		struct ipv6hdr *ip6 = data + l3;
		struct in6_addr a;

		if ((void *)(ip6 + 1) > end)
			return XDP_ABORTED;
		__builtin_memcpy(&a, &ip6->saddr, sizeof(a));
		__builtin_memcpy(&ip6->saddr, &ip6->daddr, sizeof(a));
		__builtin_memcpy(&ip6->daddr, &a, sizeof(a));
		*(__be32 *)ip6 = bpf_htonl(0x60000000); /* version 6, no traffic class or flow label */
		ip6->payload_len = bpf_htons(sizeof(struct tcphdr));
		ip6->hop_limit = RST_TTL;
	}

	th = data + l4;
	if ((void *)(th + 1) > end)
		return XDP_ABORTED;
	th->source = sport;
	th->dest = dport;
	th->seq = seq;
	th->ack_seq = 0;
	((__u8 *)th)[12] = (sizeof(*th) / 4) << 4; /* data offset 5, no options */
	((__u8 *)th)[13] = 0x04;                    /* RST */
	th->window = 0;
	th->urg_ptr = 0;
	/* Swapping the addresses leaves their sum as it was. */
	pseudo = addrs + bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(*th));
	th->check = partial ? csum_fold(pseudo) :
		    (__u16)~csum_fold(pseudo + sport + dport + (seq & 0xffff) + (seq >> 16) + bpf_htons(0x5004));
	count(HO_CNT_RST_SENT);
	return XDP_TX;
}

/*
 * XDP entry point. Consumed replies are dropped here, before the stack
 * allocates anything for them. A valid SYN+ACK goes on to the kernel, which
 * finds no socket and resets it, unless userspace asked for the RST from
 * here (cfg_rst_tx) and the frame is simple enough for reset() to rewrite.
 */
SEC("xdp")
int halfopen_xdp(struct xdp_md *ctx)
{
	struct reply r = {};

	switch (match((void *)(long)ctx->data, (void *)(long)ctx->data_end, &r)) {
	case MATCH_CONSUME:
		return XDP_DROP;
	case MATCH_OPEN:
		if (cfg_rst_tx != HO_RST_KERNEL && r.plain_ip)
			return reset(ctx, &r);
		return XDP_PASS;
	default:
		return XDP_PASS;
	}
}

/*
 * tc entry point, attached at tcx ingress when the XDP hook belongs to
 * another program. The same matcher on the same maps; what differs is only
 * what each verdict becomes:
 *  - consumed replies: TCX_DROP, as XDP drops them.
 *  - a valid SYN+ACK: TCX_NEXT, always. The kernel answers it with RST; an
 *    RST of our own would need the packet rewritten in the skb and cloned
 *    out (bpf_clone_redirect) for no gain, since the kernel's RST is what
 *    the stack does anyway and keeps conntrack in step. cfg_rst_tx is
 *    ignored here, and userspace reports the RSTs as the kernel's.
 *  - everything else: TCX_NEXT, never TCX_PASS, so that programs attached
 *    after this one (another prober's) still run.
 * Unlike XDP, tc sees an skb whose headers may lie partly outside its
 * linear part (data_end); replies to a SYN are small, so the first
 * HO_PULL_BYTES are made linear when they are not.
 */
#define HO_PULL_BYTES 160

SEC("tc")
int halfopen_tc(struct __sk_buff *skb)
{
	struct reply r = {};
	__u32 linear = skb->data_end - skb->data;

	if (linear < HO_PULL_BYTES && skb->len > linear)
		bpf_skb_pull_data(skb, skb->len < HO_PULL_BYTES ? skb->len : HO_PULL_BYTES);
	if (match((void *)(long)skb->data, (void *)(long)skb->data_end, &r) == MATCH_CONSUME)
		return TCX_DROP_;
	return TCX_NEXT_;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

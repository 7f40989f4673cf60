// The one SYN halfopen puts on the wire, shared by the batched sender
// (sender.cc) and the single check (check.cc): IPv4 (DF, TTL 64) or IPv6
// (hop limit 64), then a 24-byte TCP header with an MSS option, as an
// ordinary SYN has. Both checksums are computed here.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ho {

constexpr size_t kSynTcpLen = 24;
constexpr uint8_t kSynTtl = 64;

inline uint32_t CsumAdd(uint32_t sum, const void *data, size_t len) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  while (len > 1) {
    sum += (uint32_t)p[0] << 8 | p[1];
    p += 2;
    len -= 2;
  }
  if (len) sum += (uint32_t)p[0] << 8;
  return sum;
}

inline uint16_t CsumFold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons((uint16_t)~sum);
}

// Writes the IP header and the TCP SYN at `ip`; returns their length (44 or 64).
// src/dst: 4 bytes (IPv4) or 16 (IPv6), network order; ports network order;
// seq and ip_id host order.
inline size_t WriteSyn(uint8_t *ip, bool v6, const uint8_t *src, const uint8_t *dst, uint16_t sport_be,
                       uint16_t dport_be, uint32_t seq, uint16_t ip_id) {
  const size_t l3 = v6 ? 40 : 20, l4 = kSynTcpLen;
  uint8_t *tcp = ip + l3;
  uint32_t pseudo;
  if (!v6) {
    ip[0] = 0x45;
    ip[1] = 0;
    uint16_t tot = htons(l3 + l4), id = htons(ip_id);
    memcpy(ip + 2, &tot, 2);
    memcpy(ip + 4, &id, 2);
    ip[6] = 0x40;  // DF
    ip[7] = 0;
    ip[8] = kSynTtl;
    ip[9] = IPPROTO_TCP;
    ip[10] = ip[11] = 0;
    memcpy(ip + 12, src, 4);
    memcpy(ip + 16, dst, 4);
    uint16_t ck = CsumFold(CsumAdd(0, ip, 20));
    memcpy(ip + 10, &ck, 2);
    pseudo = CsumAdd(0, ip + 12, 8) + IPPROTO_TCP + l4;
  } else {
    uint32_t vtf = htonl(6u << 28);
    uint16_t plen = htons(l4);
    memcpy(ip, &vtf, 4);
    memcpy(ip + 4, &plen, 2);
    ip[6] = IPPROTO_TCP;
    ip[7] = kSynTtl;
    memcpy(ip + 8, src, 16);
    memcpy(ip + 24, dst, 16);
    pseudo = CsumAdd(0, ip + 8, 32) + IPPROTO_TCP + l4;
  }
  uint32_t nseq = htonl(seq);
  uint16_t win = htons(65535), mss = htons(v6 ? 1440 : 1460);
  memcpy(tcp, &sport_be, 2);
  memcpy(tcp + 2, &dport_be, 2);
  memcpy(tcp + 4, &nseq, 4);
  memset(tcp + 8, 0, 4);
  tcp[12] = (l4 / 4) << 4;
  tcp[13] = 0x02;  // SYN
  memcpy(tcp + 14, &win, 2);
  memset(tcp + 16, 0, 4);
  tcp[20] = 2;  // MSS option
  tcp[21] = 4;
  memcpy(tcp + 22, &mss, 2);
  uint16_t ck = CsumFold(CsumAdd(pseudo, tcp, l4));
  memcpy(tcp + 16, &ck, 2);
  return l3 + l4;
}

}  // namespace ho

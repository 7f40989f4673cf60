#include "json.h"

#include <cstdio>

namespace ho {

std::string JsonEscape(const std::string &s, bool latin1) {
  std::string o;
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\b': o += "\\b"; break;
      case '\f': o += "\\f"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char u[8];
          snprintf(u, sizeof(u), "\\u%04x", c);
          o += u;
        } else if (latin1 && c >= 0x80) {
          o += (char)(0xc0 | (c >> 6));
          o += (char)(0x80 | (c & 0x3f));
        } else {
          o += (char)c;
        }
    }
  }
  return o;
}

}  // namespace ho

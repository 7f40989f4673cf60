// JSON string escaping as JavaScript's JSON.stringify does it, for the
// plugin's --json output and the agent responder's replies alike. No N-API.
#pragma once
#include <string>

namespace ho {

// JSON.stringify(s) without the quotes. With latin1, each byte of s is one
// character (as Node reads a latin1 buffer) and leaves as UTF-8; without it,
// bytes at 0x80 and above pass through as they are.
std::string JsonEscape(const std::string &s, bool latin1 = false);

// JSON.stringify of a string: JsonEscape in quotes.
inline std::string JsonString(const std::string &s) { return "\"" + JsonEscape(s) + "\""; }

}  // namespace ho

// Tiny YAML writer shared by the CUDA calibration binary and the host fitter.
//
// Why our own: the lent GPU machine has no yaml-cpp, and the calibration binary must write its raw results
// there. Header-only and free of CUDA so host tests can exercise exactly the code the device binary runs.
// It writes block maps/sequences, flow sequences/maps of scalars, double-quoted strings and numbers that
// YAML 1.1 and 1.2 readers both take as floats (an exponent always comes with a '.').
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace moesim::calibrate {

class YamlNode {
 public:
  enum class Kind { Scalar, Map, Seq };

  // A string scalar, always double-quoted (so "1.0", "yes" or "null" stay strings).
  static YamlNode str(const std::string& s) { return YamlNode(Kind::Scalar, quote(s)); }
  // A bare word (enum values such as `measured`, `bf16`); the caller guarantees it is a plain scalar.
  static YamlNode word(const std::string& s) { return YamlNode(Kind::Scalar, s); }
  static YamlNode num(double v) { return YamlNode(Kind::Scalar, format_double(v)); }
  static YamlNode integer(long long v) { return YamlNode(Kind::Scalar, std::to_string(v)); }
  static YamlNode boolean(bool b) { return YamlNode(Kind::Scalar, b ? "true" : "false"); }
  static YamlNode map(bool flow = false) {
    YamlNode n(Kind::Map, "");
    n.flow_ = flow;
    return n;
  }
  static YamlNode seq(bool flow = false) {
    YamlNode n(Kind::Seq, "");
    n.flow_ = flow;
    return n;
  }

  // Appends a key (insertion order is kept: output is deterministic and reads in a sensible order).
  YamlNode& set(const std::string& key, YamlNode value) {
    if (kind_ != Kind::Map) throw std::logic_error("YamlNode::set on a non-map");
    entries_.emplace_back(key, std::move(value));
    return *this;
  }
  YamlNode& push(YamlNode value) {
    if (kind_ != Kind::Seq) throw std::logic_error("YamlNode::push on a non-sequence");
    entries_.emplace_back(std::string(), std::move(value));
    return *this;
  }

  // The document text, ending with a newline.
  std::string dump() const {
    std::string out;
    if (kind_ == Kind::Scalar || flow_ || entries_.empty()) {
      out = inline_text() + "\n";
    } else {
      emit_block(out, 0);
    }
    return out;
  }

  // "%.9g" when that reads back exactly (short, readable), else "%.17g" (always exact); an exponent
  // without a '.' ("1e-05") is a string to YAML 1.1 readers, so ".0" is inserted.
  static std::string format_double(double v) {
    if (std::isnan(v)) return ".nan";
    if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof buf, "%.17g", v);  // keep it exact
    std::string s(buf);
    const auto e = s.find('e');
    if (e != std::string::npos && s.find('.') == std::string::npos) s.insert(e, ".0");
    return s;
  }

  static std::string quote(const std::string& s) {
    std::string q = "\"";
    for (const char c : s) {
      switch (c) {
        case '"': q += "\\\""; break;
        case '\\': q += "\\\\"; break;
        case '\n': q += "\\n"; break;
        case '\t': q += "\\t"; break;
        case '\r': q += "\\r"; break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
            q += buf;
          } else {
            q += c;
          }
      }
    }
    return q + "\"";
  }

 private:
  YamlNode(Kind k, std::string text) : kind_(k), text_(std::move(text)) {}

  static std::string key_text(const std::string& k) {
    bool plain = !k.empty();
    for (const char c : k) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.';
      plain = plain && ok;
    }
    return plain ? k : quote(k);
  }

  bool is_inline() const { return kind_ == Kind::Scalar || flow_ || entries_.empty(); }

  std::string inline_text() const {
    if (kind_ == Kind::Scalar) return text_;
    std::string s = kind_ == Kind::Map ? "{" : "[";
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (i) s += ", ";
      if (kind_ == Kind::Map) s += key_text(entries_[i].first) + ": ";
      s += entries_[i].second.inline_text();
    }
    return s + (kind_ == Kind::Map ? "}" : "]");
  }

  void emit_block(std::string& out, int indent) const {
    const std::string pad(static_cast<size_t>(indent), ' ');
    for (const auto& [key, value] : entries_) {
      if (kind_ == Kind::Map) {
        out += pad + key_text(key) + ":";
        if (value.is_inline()) {
          out += " " + value.inline_text() + "\n";
        } else {
          out += "\n";
          value.emit_block(out, indent + 2);
        }
      } else if (value.is_inline()) {
        out += pad + "- " + value.inline_text() + "\n";
      } else {
        // A block collection inside a sequence starts on the dash's line: emit it two columns deeper and
        // overwrite the first line's indentation with "- " (same width).
        std::string item;
        value.emit_block(item, indent + 2);
        item.replace(0, static_cast<size_t>(indent) + 2, pad + "- ");
        out += item;
      }
    }
  }

  Kind kind_;
  std::string text_;
  bool flow_ = false;
  std::vector<std::pair<std::string, YamlNode>> entries_;
};

// Writes `text` to `path` through a temporary file and a rename, so a run killed mid-write leaves the
// previous complete file rather than a truncated one.
inline void write_file_atomic(const std::string& path, const std::string& text) {
  // Only a regular file (or a new one) is replaced: renaming over a device such as /dev/full (as root) would
  // destroy it, and a directory or FIFO is never what -o meant.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(st) && !std::filesystem::is_regular_file(st))
    throw std::runtime_error("'" + path + "' is not a regular file; outputs are written only to regular files");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot open '" + tmp + "' for writing");
    f << text;
    f.flush();
    if (!f) throw std::runtime_error("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "'");
  }
}

}  // namespace moesim::calibrate

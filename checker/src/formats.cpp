// Readers of the Porcupine oracle formats. Both build Events and reuse build_history, so pairing
// rules and errors are the same as for JSONL.
#include <faultline/checker/formats.h>
#include <fmt/format.h>

#include <charconv>
#include <vector>

namespace faultline::checker {
namespace {

std::optional<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size())
    return std::nullopt;
  return v;
}

std::vector<std::string_view> split_ws(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
      ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t')
      ++j;
    if (j > i)
      out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

// Calls fn(line_number, line) for each non-blank line; stops at the first error it returns.
template <typename Fn>
std::optional<ParseError> for_each_line(std::string_view text, std::string_view file, Fn fn) {
  std::size_t pos = 0;
  std::size_t line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos)
      continue;
    if (auto why = fn(line_no, line))
      return ParseError{std::string(file), line_no, *why};
  }
  return std::nullopt;
}

Expected<History, ParseError> finish(std::vector<Event> events, std::string_view file) {
  auto h = build_history(std::move(events));
  if (!h) {
    ParseError e = h.error();
    e.file = std::string(file);
    return e;
  }
  return h;
}

std::optional<EventType> jepsen_type(std::string_view s) {
  if (s == ":invoke")
    return EventType::invoke;
  if (s == ":ok")
    return EventType::ok;
  if (s == ":fail")
    return EventType::fail;
  if (s == ":info")
    return EventType::info;
  return std::nullopt;
}

std::optional<Value> etcd_value(std::string_view s) {
  if (s == "nil")
    return Value{};
  if (auto v = parse_int(s))
    return Value{*v};
  return std::nullopt;
}

}  // namespace

Expected<History, ParseError> parse_jepsen_etcd(std::string_view text, std::string_view file) {
  std::vector<Event> events;
  auto err = for_each_line(
      text, file, [&](std::size_t line_no, std::string_view line) -> std::optional<std::string> {
        auto tokens = split_ws(line);
        std::size_t i = 0;
        while (i < tokens.size() && tokens[i] != "-")
          ++i;
        if (i == tokens.size() || tokens.size() < i + 4) {
          return std::string("expected `INFO jepsen.util - <process> :<type> :<f> <value>`");
        }
        Event e;
        e.line = line_no;
        e.time = std::chrono::nanoseconds(line_no);
        auto process = parse_int(tokens[i + 1]);
        if (!process)
          return fmt::format("process \"{}\" is not an integer", tokens[i + 1]);
        e.process = ProcessId(*process);
        auto type = jepsen_type(tokens[i + 2]);
        if (!type)
          return fmt::format("unknown type \"{}\"", tokens[i + 2]);
        e.type = *type;
        const std::string_view f = tokens[i + 3];
        if (f == ":read") {
          e.f = Function::read;
        } else if (f == ":write") {
          e.f = Function::write;
        } else if (f == ":cas") {
          e.f = Function::cas;
        } else {
          return fmt::format("unknown function \"{}\"", f);
        }
        const std::size_t rest = i + 4;
        if (rest < tokens.size() && tokens[rest].front() == ':') {
          e.error = std::string(tokens[rest].substr(1));  // e.g. :timed-out
        } else if (e.f == Function::cas) {
          if (tokens.size() != rest + 2 || tokens[rest].front() != '[' ||
              tokens[rest + 1].back() != ']') {
            return std::string("cas value must be [expected new]");
          }
          auto expected = etcd_value(tokens[rest].substr(1));
          auto desired = etcd_value(tokens[rest + 1].substr(0, tokens[rest + 1].size() - 1));
          if (!expected || !desired)
            return std::string("cas values must be integers or nil");
          e.expected = *expected;
          e.value = *desired;
        } else if (rest < tokens.size()) {
          auto v = etcd_value(tokens[rest]);
          if (!v)
            return fmt::format("value \"{}\" is not an integer or nil", tokens[rest]);
          e.value = *v;
        }
        events.push_back(std::move(e));
        return std::nullopt;
      });
  if (err)
    return *err;
  return finish(std::move(events), file);
}

Expected<History, ParseError> parse_porcupine_kv(std::string_view text, std::string_view file) {
  std::vector<Event> events;
  auto err = for_each_line(
      text, file, [&](std::size_t line_no, std::string_view line) -> std::optional<std::string> {
        // An EDN map of keywords to numbers, keywords, strings or nil.
        std::size_t i = line.find('{');
        if (i == std::string_view::npos)
          return std::string("expected an EDN map {...}");
        ++i;
        Event e;
        e.line = line_no;
        e.time = std::chrono::nanoseconds(line_no);
        bool have_process = false, have_type = false, have_f = false;
        auto skip = [&] {
          while (i < line.size() && (line[i] == ' ' || line[i] == ',' || line[i] == '\t'))
            ++i;
        };
        auto token = [&]() -> std::string_view {
          std::size_t j = i;
          while (j < line.size() && line[j] != ' ' && line[j] != ',' && line[j] != '}' &&
                 line[j] != '\t')
            ++j;
          std::string_view t = line.substr(i, j - i);
          i = j;
          return t;
        };
        while (true) {
          skip();
          if (i >= line.size())
            return std::string("unterminated map: missing }");
          if (line[i] == '}')
            break;
          if (line[i] != ':')
            return fmt::format("expected a keyword at column {}", i + 1);
          std::string_view name = token();
          skip();
          if (i >= line.size())
            return fmt::format("missing value for {}", name);
          Value value;
          std::string_view word;
          if (line[i] == '"') {
            std::string s;
            ++i;
            while (i < line.size() && line[i] != '"') {
              if (line[i] == '\\' && i + 1 < line.size())
                ++i;
              s.push_back(line[i++]);
            }
            if (i >= line.size())
              return std::string("unterminated string");
            ++i;
            value = std::move(s);
          } else {
            word = token();
            if (word.empty())
              return fmt::format("missing value for {}", name);
            if (word != "nil" && word.front() != ':') {
              auto n = parse_int(word);
              if (!n)
                return fmt::format("bad value \"{}\" for {}", word, name);
              value = *n;
            }
          }
          if (name == ":process") {
            if (!std::holds_alternative<int64_t>(value))
              return std::string(":process must be an integer");
            e.process = ProcessId(std::get<int64_t>(value));
            have_process = true;
          } else if (name == ":type") {
            auto t = jepsen_type(word);
            if (!t)
              return fmt::format("unknown :type \"{}\"", word);
            e.type = *t;
            have_type = true;
          } else if (name == ":f") {
            if (word == ":get") {
              e.f = Function::get;
            } else if (word == ":put") {
              e.f = Function::put;
            } else if (word == ":append") {
              e.f = Function::append;
            } else {
              return fmt::format("unknown function \"{}\"", word);
            }
            have_f = true;
          } else if (name == ":key") {
            if (auto* s = std::get_if<std::string>(&value)) {
              e.key = *s;
            } else if (auto* n = std::get_if<int64_t>(&value)) {
              e.key = std::to_string(*n);
            } else {
              return std::string(":key must be a string or an integer");
            }
          } else if (name == ":value") {
            e.value = std::move(value);
          }
        }
        if (!have_process || !have_type || !have_f)
          return std::string("needs :process, :type and :f");
        if (!e.key)
          return std::string("needs :key");
        events.push_back(std::move(e));
        return std::nullopt;
      });
  if (err)
    return *err;
  return finish(std::move(events), file);
}

}  // namespace faultline::checker

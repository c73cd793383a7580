// JSONL reading and writing of histories, and the pairing of invocations with completions.
#include <faultline/checker/history.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace faultline::checker {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 5> kEventTypeNames{"invoke", "ok", "fail", "info",
                                                          "nemesis"};
constexpr std::array<std::string_view, 9> kFunctionNames{"send", "poll", "seek", "read",  "write",
                                                         "cas",  "get",  "put",  "append"};
constexpr std::array<std::string_view, 8> kNemesisNames{
    "fault-start", "fault-stop",      "leader-change", "unclean-election",
    "note",        "partition-state", "cluster-state", "process-exit"};
constexpr std::array<std::string_view, 3> kAcksNames{"unknown", "all", "1"};

template <typename Enum, std::size_t N>
std::optional<Enum> lookup(const std::array<std::string_view, N>& names, std::string_view s) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == s)
      return static_cast<Enum>(i);
  }
  return std::nullopt;
}

json value_to_json(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v))
    return *i;
  if (const auto* s = std::get_if<std::string>(&v))
    return *s;
  return nullptr;
}

bool reads_result(Function f) {
  return f == Function::read || f == Function::get || f == Function::poll;
}

}  // namespace

std::string_view to_string(EventType t) noexcept {
  return kEventTypeNames[static_cast<int>(t)];
}
std::string_view to_string(Function f) noexcept {
  return kFunctionNames[static_cast<int>(f)];
}
std::string_view to_string(NemesisKind k) noexcept {
  return kNemesisNames[static_cast<int>(k)];
}
std::optional<EventType> event_type_from(std::string_view s) noexcept {
  return lookup<EventType>(kEventTypeNames, s);
}
std::optional<Function> function_from(std::string_view s) noexcept {
  return lookup<Function>(kFunctionNames, s);
}
std::optional<NemesisKind> nemesis_kind_from(std::string_view s) noexcept {
  return lookup<NemesisKind>(kNemesisNames, s);
}
std::string_view to_string(Acks a) noexcept {
  return kAcksNames[static_cast<int>(a)];
}
std::optional<Acks> acks_from(std::string_view s) noexcept {
  // "unknown" is what an absent field means, not something a header may say.
  if (s == "unknown")
    return std::nullopt;
  return lookup<Acks>(kAcksNames, s);
}

std::string format_value(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v))
    return std::to_string(*i);
  if (const auto* s = std::get_if<std::string>(&v))
    return json(*s).dump();
  return "nil";
}

std::string ParseError::to_string() const {
  if (line == 0)
    return fmt::format("{}: {}", file.empty() ? "<input>" : file, why);
  return fmt::format("{}:{}: {}", file.empty() ? "<input>" : file, line, why);
}

std::string history_header_line(std::string_view workload, Acks acks) {
  json j;
  j["faultline_history"] = kHistoryFormatVersion;
  j["workload"] = std::string(workload);
  if (acks != Acks::unknown)
    j["acks"] = std::string(to_string(acks));
  return j.dump();
}

namespace {

json brokers_json(const std::vector<BrokerId>& brokers) {
  json arr = json::array();
  for (BrokerId b : brokers)
    arr.push_back(b.value());
  return arr;
}

// The timeline fields. A list or flag is written whenever its event kind holds it (an empty ISR
// is information) and otherwise only when set, so a write/read/write round trip is a fixed point.
void add_timeline_fields(const Event& e, json& j) {
  const bool nemesis = e.type == EventType::nemesis;
  const bool partition_state = nemesis && e.nemesis == NemesisKind::partition_state;
  const bool cluster_state = nemesis && e.nemesis == NemesisKind::cluster_state;
  auto put = [&](const char* name, const std::vector<BrokerId>& v, bool always) {
    if (always || !v.empty())
      j[name] = brokers_json(v);
  };
  put("isr", e.isr, partition_state);
  put("replicas", e.replicas, partition_state);
  if (partition_state || e.unclean)
    j["unclean"] = e.unclean;
  put("alive", e.alive, cluster_state);
  put("fenced", e.fenced, cluster_state);
  put("demoted", e.demoted, cluster_state);
  put("shutting_down", e.shutting_down, cluster_state);
  if ((nemesis && e.nemesis == NemesisKind::process_exit) || e.graceful)
    j["graceful"] = e.graceful;
}

}  // namespace

std::string to_jsonl_line(const Event& e) {
  // Keys are written in a fixed, readable order: type, process, f first.
  json j = json::object();
  j["type"] = std::string(to_string(e.type));
  if (e.type == EventType::nemesis) {
    j["f"] = std::string(to_string(e.nemesis));
  } else {
    j["process"] = e.process.value();
    j["f"] = std::string(to_string(e.f));
  }
  j["time_ns"] = e.time.count();
  if (e.partition)
    j["partition"] = e.partition->value();
  if (e.key)
    j["key"] = *e.key;
  if (e.f == Function::cas && e.type != EventType::nemesis) {
    if (!std::holds_alternative<std::monostate>(e.expected) ||
        !std::holds_alternative<std::monostate>(e.value)) {
      j["value"] = json::array({value_to_json(e.expected), value_to_json(e.value)});
    }
  } else if (!std::holds_alternative<std::monostate>(e.value)) {
    j["value"] = value_to_json(e.value);
  }
  if (!e.values.empty()) {
    json arr = json::array();
    for (const auto& v : e.values)
      arr.push_back(value_to_json(v));
    j["values"] = std::move(arr);
  }
  if (e.offset)
    j["offset"] = e.offset->value();
  if (!e.records.empty() || (e.f == Function::poll && e.type == EventType::ok)) {
    json arr = json::array();
    for (const auto& r : e.records)
      arr.push_back(json::array({r.offset.value(), r.value}));
    j["records"] = std::move(arr);
  }
  if (e.epoch)
    j["epoch"] = e.epoch->value();
  if (e.leader)
    j["leader"] = e.leader->value();
  if (e.final_read)
    j["final"] = true;
  add_timeline_fields(e, j);
  if (!e.error.empty())
    j["error"] = e.error;
  if (!e.fault.empty())
    j["fault"] = e.fault;
  if (!e.target.empty())
    j["target"] = e.target;
  // Replace invalid UTF-8 instead of throwing: a history line must always be writable.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

// A parsed JSON value, reduced to what history lines hold. Both the fast scanner and nlohmann's
// DOM produce it, and one validation reads it, so both paths give the same events and messages.
struct JValue {
  enum class Kind : uint8_t { null, boolean, integer, string, array, other };
  Kind kind = Kind::null;
  bool boolean = false;
  int64_t integer = 0;
  std::string_view string;  // into the line (fast path) or the DOM (both outlive the JObject)
  std::vector<JValue> items;
};
using JObject = std::vector<std::pair<std::string_view, JValue>>;

// The fast path: a scanner for the subset a recorder writes (no escapes, no floats, no nested
// objects, no duplicate keys). Anything else returns nullopt and nlohmann decides, which also
// gives the precise syntax error.
class FastScanner {
 public:
  explicit FastScanner(std::string_view text) : t_(text) {}

  std::optional<JObject> object() {
    JObject out;
    out.reserve(12);
    skip();
    if (!eat('{'))
      return std::nullopt;
    skip();
    if (eat('}'))
      return finish(std::move(out));
    while (true) {
      skip();
      std::string_view key;
      if (!string(key))
        return std::nullopt;
      skip();
      if (!eat(':'))
        return std::nullopt;
      JValue v;
      if (!value(v, 0))
        return std::nullopt;
      for (const auto& [k, _] : out) {
        if (k == key)
          return std::nullopt;
      }
      out.emplace_back(key, std::move(v));
      skip();
      if (eat(','))
        continue;
      if (eat('}'))
        return finish(std::move(out));
      return std::nullopt;
    }
  }

 private:
  std::optional<JObject> finish(JObject out) {
    skip();
    if (i_ != t_.size())
      return std::nullopt;
    return out;
  }
  void skip() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool string(std::string_view& out) {
    if (!eat('"'))
      return false;
    const std::size_t start = i_;
    while (i_ < t_.size() && t_[i_] != '"') {
      const auto c = static_cast<unsigned char>(t_[i_]);
      if (c == '\\' || c < 0x20 || c >= 0x80)
        return false;  // escapes, controls, UTF-8: DOM
      ++i_;
    }
    if (i_ >= t_.size())
      return false;
    out = t_.substr(start, i_ - start);
    ++i_;
    return true;
  }
  bool word(std::string_view w) {
    if (t_.substr(i_, w.size()) != w)
      return false;
    i_ += w.size();
    return true;
  }
  bool value(JValue& v, int depth) {
    skip();
    if (i_ >= t_.size() || depth > 3)
      return false;
    const char c = t_[i_];
    if (c == '"') {
      v.kind = JValue::Kind::string;
      return string(v.string);
    }
    if (c == '[') {
      ++i_;
      v.kind = JValue::Kind::array;
      skip();
      if (eat(']'))
        return true;
      while (true) {
        v.items.emplace_back();
        if (!value(v.items.back(), depth + 1))
          return false;
        skip();
        if (eat(','))
          continue;
        return eat(']');
      }
    }
    if (c == 't' || c == 'f' || c == 'n') {
      if (word("true")) {
        v.kind = JValue::Kind::boolean;
        v.boolean = true;
        return true;
      }
      if (word("false")) {
        v.kind = JValue::Kind::boolean;
        return true;
      }
      v.kind = JValue::Kind::null;
      return word("null");
    }
    // An integer: JSON's grammar (no leading zeros, no '+'), nothing fractional, no overflow.
    const std::size_t start = i_;
    if (c == '-')
      ++i_;
    if (i_ >= t_.size() || t_[i_] < '0' || t_[i_] > '9')
      return false;
    if (t_[i_] == '0' && i_ + 1 < t_.size() && t_[i_ + 1] >= '0' && t_[i_ + 1] <= '9')
      return false;
    while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9')
      ++i_;
    if (i_ < t_.size() && (t_[i_] == '.' || t_[i_] == 'e' || t_[i_] == 'E'))
      return false;
    if (i_ - start > 18)
      return false;  // might overflow: let nlohmann decide
    int64_t n = 0;
    const bool negative = t_[start] == '-';
    for (std::size_t k = start + (negative ? 1 : 0); k < i_; ++k)
      n = n * 10 + (t_[k] - '0');
    v.kind = JValue::Kind::integer;
    v.integer = negative ? -n : n;
    return true;
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

JValue from_dom(const json& j) {
  JValue v;
  if (j.is_null()) {
    v.kind = JValue::Kind::null;
  } else if (j.is_boolean()) {
    v.kind = JValue::Kind::boolean;
    v.boolean = j.get<bool>();
  } else if (j.is_number_integer() &&
             (!j.is_number_unsigned() || j.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))) {
    v.kind = JValue::Kind::integer;
    v.integer = j.get<int64_t>();
  } else if (j.is_string()) {
    v.kind = JValue::Kind::string;
    v.string = j.get_ref<const std::string&>();
  } else if (j.is_array()) {
    v.kind = JValue::Kind::array;
    for (const auto& x : j)
      v.items.push_back(from_dom(x));
  } else {
    v.kind = JValue::Kind::other;
  }
  return v;
}

const JValue* find(const JObject& o, std::string_view key) {
  for (const auto& [k, v] : o) {
    if (k == key)
      return &v;
  }
  return nullptr;
}

std::optional<Value> scalar(const JValue& v) {
  switch (v.kind) {
    case JValue::Kind::null:
      return Value{};
    case JValue::Kind::integer:
      return Value{v.integer};
    case JValue::Kind::string:
      return Value{std::string(v.string)};
    default:
      return std::nullopt;
  }
}

// A list of broker ids ("isr": [1, 2]); absent leaves `out` empty.
std::optional<std::string> broker_list(const JObject& j, const char* name,
                                       std::vector<BrokerId>& out) {
  const JValue* v = find(j, name);
  if (v == nullptr)
    return std::nullopt;
  if (v->kind != JValue::Kind::array)
    return fmt::format("\"{}\" must be an array of broker ids", name);
  out.reserve(v->items.size());
  for (const auto& item : v->items) {
    if (item.kind != JValue::Kind::integer || item.integer < INT32_MIN ||
        item.integer > INT32_MAX) {
      return fmt::format("\"{}\" must hold integer broker ids", name);
    }
    out.emplace_back(static_cast<int32_t>(item.integer));
  }
  return std::nullopt;
}

// What the invariant pass relies on for each timeline event. An empty list is written as [], so
// "isr" present-and-empty and "isr" missing are different things.
std::optional<std::string> timeline_requirements(const JObject& j, const Event& e) {
  switch (e.nemesis) {
    case NemesisKind::partition_state:
      if (!e.partition || !e.epoch || !e.leader || find(j, "isr") == nullptr ||
          find(j, "replicas") == nullptr) {
        return std::string(
            "partition-state needs \"partition\", \"epoch\", \"leader\", \"isr\" and "
            "\"replicas\"");
      }
      return std::nullopt;
    case NemesisKind::cluster_state:
      if (find(j, "alive") == nullptr)
        return std::string("cluster-state needs \"alive\"");
      return std::nullopt;
    case NemesisKind::process_exit:
      if (!e.leader)
        return std::string("process-exit needs \"leader\" (the broker that exited)");
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

Expected<Event, std::string> event_from(const JObject& j) {
  Event e;
  auto get_string = [&](const char* name, bool required,
                        std::string& out) -> std::optional<std::string> {
    const JValue* v = find(j, name);
    if (v == nullptr) {
      if (required)
        return fmt::format("missing \"{}\"", name);
      return std::nullopt;
    }
    if (v->kind != JValue::Kind::string)
      return fmt::format("\"{}\" must be a string", name);
    out.assign(v->string);
    return std::nullopt;
  };
  auto get_int = [&](const char* name, bool required,
                     std::optional<int64_t>& out) -> std::optional<std::string> {
    const JValue* v = find(j, name);
    if (v == nullptr || v->kind == JValue::Kind::null) {
      if (required)
        return fmt::format("missing \"{}\"", name);
      return std::nullopt;
    }
    if (v->kind != JValue::Kind::integer)
      return fmt::format("\"{}\" must be an integer", name);
    out = v->integer;
    return std::nullopt;
  };

  std::string type_name;
  if (auto err = get_string("type", true, type_name))
    return *err;
  auto type = event_type_from(type_name);
  if (!type)
    return fmt::format("unknown type \"{}\" (invoke, ok, fail, info or nemesis)", type_name);
  e.type = *type;

  std::string f_name;
  if (auto err = get_string("f", true, f_name))
    return *err;
  if (e.type == EventType::nemesis) {
    auto kind = nemesis_kind_from(f_name);
    if (!kind)
      return fmt::format("unknown nemesis event \"{}\"", f_name);
    e.nemesis = *kind;
  } else {
    auto f = function_from(f_name);
    if (!f)
      return fmt::format("unknown function \"{}\"", f_name);
    e.f = *f;
    std::optional<int64_t> process;
    if (auto err = get_int("process", true, process))
      return *err;
    e.process = ProcessId(*process);
  }

  std::optional<int64_t> time;
  if (auto err = get_int("time_ns", true, time))
    return *err;
  if (*time < 0)
    return std::string("\"time_ns\" must not be negative");
  e.time = std::chrono::nanoseconds(*time);

  std::optional<int64_t> n;
  if (auto err = get_int("partition", false, n))
    return *err;
  if (n) {
    if (*n < 0 || *n > INT32_MAX)
      return std::string("\"partition\" out of range");
    e.partition = PartitionId(static_cast<int32_t>(*n));
  }
  n.reset();
  if (auto err = get_int("offset", false, n))
    return *err;
  if (n)
    e.offset = Offset(*n);
  n.reset();
  if (auto err = get_int("epoch", false, n))
    return *err;
  if (n) {
    if (*n < INT32_MIN || *n > INT32_MAX)
      return std::string("\"epoch\" out of range");
    e.epoch = LeaderEpoch(static_cast<int32_t>(*n));
  }
  n.reset();
  if (auto err = get_int("leader", false, n))
    return *err;
  if (n) {
    if (*n < INT32_MIN || *n > INT32_MAX)
      return std::string("\"leader\" out of range");
    e.leader = BrokerId(static_cast<int32_t>(*n));
  }

  if (find(j, "key") != nullptr) {
    std::string key;
    if (auto err = get_string("key", false, key))
      return *err;
    e.key = std::move(key);
  }
  if (auto err = get_string("error", false, e.error))
    return *err;
  if (auto err = get_string("fault", false, e.fault))
    return *err;
  if (auto err = get_string("target", false, e.target))
    return *err;
  auto get_bool = [&](const char* name, bool& out) -> std::optional<std::string> {
    if (const JValue* v = find(j, name)) {
      if (v->kind != JValue::Kind::boolean)
        return fmt::format("\"{}\" must be true or false", name);
      out = v->boolean;
    }
    return std::nullopt;
  };
  for (auto [name, out] : {std::pair<const char*, bool*>{"final", &e.final_read},
                           {"unclean", &e.unclean},
                           {"graceful", &e.graceful}}) {
    if (auto err = get_bool(name, *out))
      return *err;
  }
  for (auto [name, out] : {std::pair<const char*, std::vector<BrokerId>*>{"isr", &e.isr},
                           {"replicas", &e.replicas},
                           {"alive", &e.alive},
                           {"fenced", &e.fenced},
                           {"demoted", &e.demoted},
                           {"shutting_down", &e.shutting_down}}) {
    if (auto err = broker_list(j, name, *out))
      return *err;
  }

  if (const JValue* v = find(j, "value")) {
    if (e.type != EventType::nemesis && e.f == Function::cas) {
      if (v->kind != JValue::Kind::array || v->items.size() != 2) {
        return std::string("cas \"value\" must be [expected, new]");
      }
      auto expected = scalar(v->items[0]);
      auto desired = scalar(v->items[1]);
      if (!expected || !desired)
        return std::string("cas values must be integers, strings or null");
      e.expected = std::move(*expected);
      e.value = std::move(*desired);
    } else {
      auto x = scalar(*v);
      if (!x)
        return std::string("\"value\" must be an integer, a string or null");
      e.value = std::move(*x);
    }
  }
  if (const JValue* v = find(j, "values")) {
    if (v->kind != JValue::Kind::array)
      return std::string("\"values\" must be an array");
    for (const auto& item : v->items) {
      auto x = scalar(item);
      if (!x)
        return std::string("\"values\" must hold integers, strings or null");
      e.values.push_back(std::move(*x));
    }
  }
  if (const JValue* v = find(j, "records")) {
    if (v->kind != JValue::Kind::array) {
      return std::string("\"records\" must be an array of [offset, value]");
    }
    e.records.reserve(v->items.size());
    for (const auto& r : v->items) {
      if (r.kind != JValue::Kind::array || r.items.size() != 2 ||
          r.items[0].kind != JValue::Kind::integer || r.items[1].kind != JValue::Kind::integer) {
        return std::string("each record must be [offset, value] with integers");
      }
      e.records.push_back(Record{Offset(r.items[0].integer), r.items[1].integer});
    }
  }

  if (e.type == EventType::nemesis) {
    if (auto err = timeline_requirements(j, e))
      return *err;
  }

  // Per-function requirements: what the checkers rely on. A completion inherits partition and key
  // from its invocation, so only invocations must carry them.
  if (e.type == EventType::invoke) {
    switch (e.f) {
      case Function::send:
        if (!e.partition)
          return std::string("send needs \"partition\"");
        if (!std::holds_alternative<int64_t>(e.value)) {
          return std::string("send needs an integer \"value\"");
        }
        break;
      case Function::poll:
        if (!e.partition)
          return std::string("poll needs \"partition\"");
        break;
      case Function::seek:
        if (!e.partition || !e.offset)
          return std::string("seek needs \"partition\" and \"offset\"");
        break;
      case Function::get:
      case Function::put:
        if (!e.key)
          return fmt::format("{} needs \"key\"", to_string(e.f));
        break;
      default:
        break;
    }
  }
  return e;
}

}  // namespace

Expected<Event, std::string> parse_event_line(std::string_view line) {
  if (auto fast = FastScanner(line).object())
    return event_from(*fast);
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& ex) {
    // A syntax error, or a number out of range (1e999). nlohmann's message names the byte
    // position; keep only its reason.
    std::string what = ex.what();
    if (auto pos = what.find(": "); pos != std::string::npos)
      what = what.substr(pos + 2);
    return std::string("not valid JSON (") + what + ")";
  }
  if (!j.is_object())
    return std::string("expected a JSON object");
  JObject o;
  for (auto it = j.begin(); it != j.end(); ++it) {
    o.emplace_back(std::string_view(it.key()), from_dom(it.value()));
  }
  return event_from(o);
}

namespace {

// Pairs invocations with completions one event at a time, so a parser never holds every event.
class Pairer {
 public:
  std::optional<ParseError> add(Event&& e) {
    if (e.time < last_time_) {
      return ParseError{"", e.line,
                        fmt::format("time_ns {} goes backwards (previous line had {})",
                                    e.time.count(), last_time_.count())};
    }
    last_time_ = e.time;
    if (e.type == EventType::nemesis) {
      add_nemesis(std::move(e));
      return std::nullopt;
    }
    if (e.type == EventType::invoke) {
      if (auto it = open_.find(e.process.value()); it != open_.end()) {
        return ParseError{
            "", e.line,
            fmt::format("process {} invokes {} while its {} from line {} is still open", e.process,
                        to_string(e.f), to_string(h_.ops[it->second].f),
                        h_.ops[it->second].invoke_line)};
      }
      Operation op;
      op.index = h_.ops.size();
      op.process = e.process;
      op.f = e.f;
      op.invoke_time = e.time;
      op.partition = e.partition;
      op.key = std::move(e.key);
      op.value = std::move(e.value);
      op.expected = std::move(e.expected);
      op.values = std::move(e.values);
      op.offset = e.offset;
      op.final_read = e.final_read;
      op.invoke_line = e.line;
      open_.emplace(e.process.value(), op.index);
      h_.ops.push_back(std::move(op));
      return std::nullopt;
    }
    auto it = open_.find(e.process.value());
    if (it == open_.end()) {
      return ParseError{"", e.line,
                        fmt::format("{} completion of {} for process {} without an open invoke",
                                    to_string(e.type), to_string(e.f), e.process)};
    }
    Operation& op = h_.ops[it->second];
    if (op.f != e.f) {
      return ParseError{"", e.line,
                        fmt::format("process {} completes {} but invoked {} on line {}", e.process,
                                    to_string(e.f), to_string(op.f), op.invoke_line)};
    }
    open_.erase(it);
    op.outcome = e.type == EventType::ok     ? Outcome::ok
                 : e.type == EventType::fail ? Outcome::fail
                                             : Outcome::info;
    op.complete_time = e.time;
    op.complete_line = e.line;
    if (e.offset)
      op.offset = e.offset;
    if (e.epoch)
      op.epoch = e.epoch;
    if (e.leader)
      op.leader = e.leader;
    if (e.final_read)
      op.final_read = true;
    op.error = std::move(e.error);
    if (!op.partition)
      op.partition = e.partition;
    if (op.outcome == Outcome::ok && reads_result(op.f)) {
      op.value = std::move(e.value);
      op.records = std::move(e.records);
    }
    if (op.outcome == Outcome::ok && !e.values.empty())
      op.values = std::move(e.values);
    return std::nullopt;
  }
  History finish() { return std::move(h_); }

 private:
  void add_nemesis(Event&& e) {
    NemesisEvent n;
    n.kind = e.nemesis;
    n.time = e.time;
    n.partition = e.partition;
    n.epoch = e.epoch;
    n.leader = e.leader;
    n.fault = std::move(e.fault);
    n.target = std::move(e.target);
    n.line = e.line;
    n.isr = std::move(e.isr);
    n.replicas = std::move(e.replicas);
    n.unclean = e.unclean;
    n.alive = std::move(e.alive);
    n.fenced = std::move(e.fenced);
    n.demoted = std::move(e.demoted);
    n.shutting_down = std::move(e.shutting_down);
    n.graceful = e.graceful;
    h_.nemesis.push_back(std::move(n));
  }

  History h_;
  std::unordered_map<int64_t, std::size_t> open_;  // process -> index in h_.ops
  std::chrono::nanoseconds last_time_{0};
};

}  // namespace

Expected<History, ParseError> build_history(std::vector<Event> events) {
  Pairer pairer;
  for (auto& e : events) {
    if (auto err = pairer.add(std::move(e)))
      return *err;
  }
  return pairer.finish();
}

Expected<History, ParseError> parse_jsonl(std::string_view text, std::string_view file) {
  Pairer pairer;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  bool header_seen = false;
  History header;
  auto fail = [&](std::string why) {
    return ParseError{std::string(file), line_no, std::move(why)};
  };
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    const bool terminated = end != std::string_view::npos;
    if (!terminated)
      end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos)
      continue;
    if (!header_seen) {
      json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object() || !j.contains("faultline_history")) {
        return fail("the first line must be the header {\"faultline_history\":1,...}");
      }
      const auto& v = j["faultline_history"];
      if (!v.is_number_integer() || v.get<int64_t>() != kHistoryFormatVersion) {
        return fail(fmt::format("unsupported history version {} (this checker reads {})", v.dump(),
                                kHistoryFormatVersion));
      }
      if (auto it = j.find("workload"); it != j.end() && it->is_string()) {
        header.workload = it->get<std::string>();
      }
      if (auto it = j.find("acks"); it != j.end()) {
        auto acks = it->is_string() ? acks_from(it->get<std::string>()) : std::nullopt;
        if (!acks)
          return fail(fmt::format("header \"acks\" must be \"all\" or \"1\", not {}",
                                  it->dump(-1, ' ', false, json::error_handler_t::replace)));
        header.acks = *acks;
      }
      header_seen = true;
      continue;
    }
    auto event = parse_event_line(line);
    if (!event) {
      // A last line without its newline is what a crash mid-write leaves: say so.
      if (!terminated) {
        return fail("truncated last line: " + event.error());
      }
      return fail(event.error());
    }
    event->line = line_no;
    if (auto err = pairer.add(std::move(*event))) {
      err->file = std::string(file);
      return *err;
    }
  }
  if (!header_seen) {
    return fail("empty history (no header line)");
  }
  History h = pairer.finish();
  h.workload = std::move(header.workload);
  h.acks = header.acks;
  return h;
}

}  // namespace faultline::checker

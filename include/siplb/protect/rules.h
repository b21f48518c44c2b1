// Hyperscan rule engine: a pool's [[pool.rule]] entries compiled once per
// snapshot (control thread) and matched by workers on the header spans the
// SIP parser already found.
//
// Layout: rules are grouped by the field they inspect and each group is one
// Hyperscan block-mode multi-pattern database (HS_FLAG_SINGLEMATCH, plus
// HS_FLAG_CASELESS per rule, HS_FLAG_DOTALL so `.` also covers the fold
// bytes of folded headers). A message is matched by scanning each inspected
// field's span once with that field's database only. We chose per-field
// databases over one database on a synthesized, tagged stream because
//  - every span is scanned exactly once and only by the patterns that apply
//    to it (no wasted matching of URI patterns on User-Agent bytes);
//  - `^` and `$` keep their natural meaning (start/end of the field value),
//    with no rewriting of operators' patterns and no way for `.*` to run from
//    one field into the next;
//  - no copy: Hyperscan reads the datagram bytes in place.
// All databases of one CompiledRules live and die together (one snapshot);
// one RuleScratch sized for all of them serves every database.
//
// Fields: "method" (request method token), "request_uri", "user_agent",
// "from", "to" (whole header values as the parser found them) and
// "header:NAME" (first header NAME, via sip::find_header; NAME matches its
// compact form too). header:User-Agent/From/f/To/t/Call-ID/i/CSeq reuse the
// parser's spans. An absent or empty field never matches. Rules apply to
// requests and responses (responses have no method or Request-URI);
// keepalives and rejected datagrams are never matched.
//
// Memo (RuleCache): a database's verdict on a field depends on the field's
// bytes only, and the same values come back all the time (a handful of
// User-Agents per deployment, the From of every message of a call, every
// re-REGISTER). Each worker keeps, per database, a set-associative table of
// recent values (compared byte for byte, not by hash alone) and the lowest
// rule of that database they matched; a hit costs a hash and a memcmp
// instead of a scan. Exact: a value is only ever answered with the result
// of scanning that same value with that same database.
//
// Why a memo per field and not one per message (all rule fields as one
// key)? We built the latter: a known tuple then costs ~70 instructions
// less per request (one lookup instead of two), but a new call's From
// (its tag is new) makes the whole tuple new and rescans the User-Agent
// the per-field memo still knows, ~1600 instructions. That breaks even
// at 4-5 % of requests with a new From, and an edge sees far more: every
// INVITE, and every REGISTER and OPTIONS that carries a fresh tag.
//
// One scan per message? We measured putting all fields' patterns in one
// database (spans copied into one buffer with '\n' between them, or
// hs_scan_vector over the spans in place) against one scan per field: the
// single block scan was 5-20 % slower (every pattern then runs over every
// field's bytes) and the vectored scan 2x slower (Hyperscan runs vectored
// databases on its streaming engine), and neither keeps `^`, `$` and the
// field boundaries exact without rewriting the operators' patterns. So a
// message costs at most one scan per distinct field it carries and the
// rules name, none when the memo knows the values, none when it carries
// none of those fields.
//
// Semantics: the first matching rule in config order wins (firewall style);
// its action is returned. `allow` ends rule evaluation (later drop rules do
// not apply) but does not exempt the source from rate limiting: rules match
// header text a sender chooses, so they must not unlock a flood. `route`
// sends the message to another pool (index into the config's pool list).
//
// Counting: evaluate() keeps no counters. Its verdict says which rule won
// and how many scans and memo hits it took; the caller counts them where
// its other counters live (the dataplane's per-lcore blocks, by pool and
// rule name, so they survive reloads).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/result.h"
#include "siplb/common/table_memory.h"
#include "siplb/protect/spec.h"
#include "siplb/sip/parser.h"

struct hs_database;
struct hs_scratch;

namespace siplb::protect {

inline constexpr uint32_t kNoRule = UINT32_MAX;
inline constexpr uint32_t kNoPool = UINT32_MAX;

// Where a rule looks. `header` uses sip::find_header with a name.
enum class Field : uint8_t { method, request_uri, user_agent, from, to, call_id, cseq, header };

struct RuleInfo {
    std::string name;
    Field field = Field::method;
    std::string header;  // for Field::header: the header name as configured
    RuleAction action = RuleAction::drop;
    std::string route_pool;               // action route: target pool name
    uint32_t route_pool_index = kNoPool;  // index into the pool list given to build()
};

class CompiledRules;
// The parsed headers evaluate() reads for these rules (method, Request-URI
// and named headers come from the start line or a search of their own).
sip::HeaderSet headers_read(const CompiledRules& rules) noexcept;
class RuleScratch;
class RuleCache;
struct RuleVerdict;

// Hyperscan scratch space of one worker. Not shareable between threads.
// reserve() allocates (control thread or worker start / reload, never per
// packet); one scratch can be reserved for several rule sets (all pools).
class RuleScratch {
public:
    RuleScratch() = default;
    ~RuleScratch();
    RuleScratch(RuleScratch&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
    RuleScratch& operator=(RuleScratch&& o) noexcept;
    RuleScratch(const RuleScratch&) = delete;
    RuleScratch& operator=(const RuleScratch&) = delete;

    // Grows the scratch so it serves every database of `rules`.
    Status reserve(const CompiledRules& rules);
    // A copy for another worker (hs_clone_scratch).
    Result<RuleScratch> clone() const;
    bool valid() const noexcept { return s_ != nullptr; }

private:
    friend RuleVerdict evaluate(const CompiledRules&, const uint8_t*, size_t, const sip::SipMessage&, RuleScratch&,
                                RuleCache*) noexcept;
    hs_scratch* s_ = nullptr;
};

// One worker's memo of field values already scanned, for one CompiledRules
// (see the header comment). Allocated once by create() (control thread);
// evaluate() only reads and overwrites entries. Not shareable between
// threads. A default-constructed RuleCache remembers nothing.
class RuleCache {
public:
    // Values longer than this are scanned every time (real User-Agent and
    // From values are 20-100 bytes).
    static constexpr size_t kMaxValue = 124;
    // Ways per set. Eight keep a working set of values that fits the memo
    // from thrashing: with two, the ~4 % of sets that drew three or more of
    // the benchmarks' ~760 From values missed on every message of theirs.
    static constexpr uint32_t kWays = 8;
    // 128-byte entries plus a 64-byte tag line per set: 544 KiB per database
    // (distinct field), pool and worker; a lookup touches two lines of it.
    // What comes back is a handful of User-Agents and the From of each
    // dialog in progress (a request outside a dialog has a new From tag):
    // 4096 values hold the dialogs of about 20 new calls a second per worker
    // at 3 minutes a call. On a busier node a dialog's From has left the
    // memo before its next message and costs a scan, as a new call's does.
    // The size is also below the daemon benchmark mix's 5844 distinct From
    // values (16384 frames replayed over and over), so the replay cannot turn
    // new calls into hits that live traffic would never see.
    static constexpr uint32_t kDefaultEntries = 4096;

    // `entries` per database: a power of two in [16, 2^16]. `seed` salts the
    // index hash so that nobody outside can aim values at one set.
    static Result<RuleCache> create(const CompiledRules& rules, uint32_t entries = kDefaultEntries,
                                    uint64_t seed = 0x6d656d6f);
    RuleCache() = default;
    RuleCache(RuleCache&&) noexcept = default;
    RuleCache& operator=(RuleCache&&) noexcept = default;

    bool enabled() const noexcept { return static_cast<bool>(slots_); }

private:
    friend RuleVerdict evaluate(const CompiledRules&, const uint8_t*, size_t, const sip::SipMessage&, RuleScratch&,
                                RuleCache*) noexcept;
    static constexpr uint32_t kMiss = UINT32_MAX - 1;  // distinct from kNoRule, a remembered "no match"
    // A set's tags in one line: a lookup reads this line and the one entry
    // whose tag and length match. Not-recently-used replacement: `used`
    // marks the ways hit since it last filled up.
    struct alignas(64) Set {
        uint32_t tag[kWays];     // hash bits 32-63 of the value in each way
        uint16_t length[kWays];  // 0: empty way (empty values are never scanned)
        uint8_t used;
    };
    struct alignas(64) Entry {
        uint32_t rule;  // lowest rule of the database the value matched, or kNoRule
        uint8_t bytes[kMaxValue];
    };
    static_assert(sizeof(Set) == 64 && sizeof(Entry) == 128);

    uint64_t hash(size_t db, const uint8_t* value, size_t length) const noexcept;
    // Index of the set (in sets_; its ways start at that index x kWays in
    // slots_) that database `db`'s values with hash `hash` live in.
    size_t set_of(size_t db, uint64_t hash) const noexcept { return db * (size_t{set_mask_} + 1) + (hash & set_mask_); }
    // The remembered rule for `value` in database `db`, or kMiss.
    uint32_t find(size_t db, uint64_t hash, const uint8_t* value, size_t length) noexcept;
    void store(size_t db, uint64_t hash, const uint8_t* value, size_t length, uint32_t rule) noexcept;

    TableArray<Set> sets_;     // databases x sets
    TableArray<Entry> slots_;  // databases x sets x kWays
    uint32_t set_mask_ = 0;    // sets per database - 1
    size_t databases_ = 0;
    uint64_t seed_ = 0;
};

struct RuleVerdict {
    enum class Action : uint8_t { none, drop, allow, route };
    Action action = Action::none;      // none: no rule matched
    uint32_t rule = kNoRule;           // index of the winning rule
    uint32_t route_pool = kNoPool;     // action route: target pool index
    std::string_view route_pool_name;  // action route: target pool name (owned by the rules)
    // What it took (at most one of each per database, and CompiledRules
    // has at most kMaxDatabases): Hyperscan scans run, field values the
    // memo answered instead, and scans Hyperscan refused (scratch not
    // reserved for these rules: the field then counts as unmatched; non-zero
    // means a wiring bug).
    uint16_t scans = 0;
    uint16_t memo_hits = 0;
    uint16_t scan_errors = 0;
};

// Matches one parsed message (`payload`: the UDP payload the parser saw).
// `cache`: this worker's memo for `rules` (nullptr: scan every field).
// No allocation, no lock, no exception.
RuleVerdict evaluate(const CompiledRules& rules, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                     RuleScratch& scratch, RuleCache* cache = nullptr) noexcept;

class CompiledRules {
public:
    // Distinct fields (databases) one rule set may inspect: what a verdict's
    // 16-bit scan counts can hold.
    static constexpr size_t kMaxDatabases = UINT16_MAX;
    // Compiles `rules` (one pool's, in config order). `pool_names` is the
    // config's pool list in order; a route target must be in it (an empty
    // list skips that check and leaves route_pool_index = kNoPool). Errors
    // name the rule: "rule 'scanner' (rules[2]): pattern 'x(': Missing
    // close parenthesis ...". An empty rule list builds an empty set.
    static Result<std::shared_ptr<const CompiledRules>> build(std::span<const RuleSpec> rules,
                                                              std::span<const std::string> pool_names = {});

    ~CompiledRules();
    CompiledRules(const CompiledRules&) = delete;
    CompiledRules& operator=(const CompiledRules&) = delete;

    size_t size() const noexcept { return rules_.size(); }
    bool empty() const noexcept { return rules_.empty(); }
    std::span<const RuleInfo> rules() const noexcept { return rules_; }
    // Number of Hyperscan databases (one per distinct field); for tests.
    size_t databases() const noexcept { return dbs_.size(); }

private:
    friend class RuleScratch;
    friend class RuleCache;
    friend RuleVerdict evaluate(const CompiledRules&, const uint8_t*, size_t, const sip::SipMessage&, RuleScratch&,
                                RuleCache*) noexcept;
    struct FieldDb {
        Field field = Field::method;
        std::string header;  // Field::header only
        hs_database* db = nullptr;
        uint32_t first_rule = 0;  // lowest rule index in this database
    };
    CompiledRules() = default;
    std::vector<RuleInfo> rules_;
    std::vector<FieldDb> dbs_;  // ascending first_rule
};

// "drop", "allow", "route": the config's word for an action.
const char* to_string(RuleAction a) noexcept;

// Parses a config field ("method", "header:X-Foo", ...); false if unknown.
bool parse_field(std::string_view text, Field& field, std::string& header);

}  // namespace siplb::protect

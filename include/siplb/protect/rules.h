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
// Semantics: the first matching rule in config order wins (firewall style);
// its action is returned. `allow` ends rule evaluation (later drop rules do
// not apply) but does not exempt the source from rate limiting: rules match
// header text a sender chooses, so they must not unlock a flood. `route`
// sends the message to another pool (index into the config's pool list).
// Per-rule hit counters count the winning rule only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/result.h"
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
class RuleScratch;
class RuleCounters;
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
                                RuleCounters&) noexcept;
    hs_scratch* s_ = nullptr;
};

// Per-worker, per-rule-set hit counters: the worker is the only writer
// (relaxed load+store, no locked instruction), readers sum all workers.
class RuleCounters {
public:
    explicit RuleCounters(size_t rules) : n_(rules), hits_(new std::atomic<uint64_t>[rules ? rules : 1]) {
        for (size_t i = 0; i < (rules ? rules : 1); ++i) hits_[i].store(0, std::memory_order_relaxed);
    }
    size_t size() const noexcept { return n_; }
    uint64_t hits(size_t rule) const noexcept { return hits_[rule].load(std::memory_order_relaxed); }
    // Scans Hyperscan refused (scratch not reserved for these rules): the
    // message then passes unmatched. Non-zero means a wiring bug.
    uint64_t scan_errors() const noexcept { return scan_errors_.load(std::memory_order_relaxed); }

    void hit(size_t rule) noexcept { bump(hits_[rule]); }
    void scan_error() noexcept { bump(scan_errors_); }

    // Sum of several workers' counters for the same rule set.
    static std::vector<uint64_t> aggregate(std::span<const RuleCounters* const> workers);

private:
    static void bump(std::atomic<uint64_t>& c) noexcept {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    size_t n_;
    std::unique_ptr<std::atomic<uint64_t>[]> hits_;
    std::atomic<uint64_t> scan_errors_{0};
};

struct RuleVerdict {
    enum class Action : uint8_t { none, drop, allow, route };
    Action action = Action::none;      // none: no rule matched
    uint32_t rule = kNoRule;           // index of the winning rule
    uint32_t route_pool = kNoPool;     // action route: target pool index
    std::string_view route_pool_name;  // action route: target pool name (owned by the rules)
};

// Matches one parsed message (`payload`: the UDP payload the parser saw).
// No allocation, no lock, no exception.
RuleVerdict evaluate(const CompiledRules& rules, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                     RuleScratch& scratch, RuleCounters& counters) noexcept;

class CompiledRules {
public:
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
    friend RuleVerdict evaluate(const CompiledRules&, const uint8_t*, size_t, const sip::SipMessage&, RuleScratch&,
                                RuleCounters&) noexcept;
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

// Parses a config field ("method", "header:X-Foo", ...); false if unknown.
bool parse_field(std::string_view text, Field& field, std::string& header);

}  // namespace siplb::protect

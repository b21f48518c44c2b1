#include "siplb/protect/rules.h"

#include <hs/hs.h>
// XXH3 inline: the memo hashes one or two values per message.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <map>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace siplb::protect {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Key under which rules share a database: the field, and for named headers
// the lower-cased long name (so "header:f" and "from" land together).
struct FieldKey {
    Field field;
    std::string header;
    bool operator<(const FieldKey& o) const { return field != o.field ? field < o.field : header < o.header; }
};

sip::Span field_span(const uint8_t* payload, size_t len, const sip::SipMessage& msg, Field f,
                     const std::string& header) noexcept {
    switch (f) {
        case Field::method: return msg.kind == sip::Kind::request ? msg.method_token : sip::Span{};
        case Field::request_uri: return msg.kind == sip::Kind::request ? msg.request_uri : sip::Span{};
        case Field::user_agent: return msg.user_agent;
        case Field::from: return msg.from;
        case Field::to: return msg.to;
        case Field::call_id: return msg.call_id;
        case Field::cseq: return msg.cseq;
        case Field::header: return sip::find_header(payload, len, msg, header);
    }
    return {};
}

// The parsed header behind each field that field_span() takes from the parse.
sip::HeaderSet::Header parsed_header(Field f) noexcept {
    switch (f) {
        case Field::user_agent: return sip::HeaderSet::user_agent;
        case Field::from: return sip::HeaderSet::from;
        case Field::to: return sip::HeaderSet::to;
        case Field::cseq: return sip::HeaderSet::cseq;
        case Field::call_id:
        case Field::method:
        case Field::request_uri:
        case Field::header: break;
    }
    return sip::HeaderSet::call_id;
}

struct MatchContext {
    uint32_t best;
    uint32_t floor;  // lowest rule of the database being scanned: nothing can beat it
};

int on_match(unsigned int id, unsigned long long, unsigned long long, unsigned int, void* ctx) {
    auto* m = static_cast<MatchContext*>(ctx);
    if (id < m->best) m->best = id;
    return m->best == m->floor ? 1 : 0;  // 1 stops the scan: no better rule in this database
}

}  // namespace

bool parse_field(std::string_view text, Field& field, std::string& header) {
    header.clear();
    if (text == "method")
        field = Field::method;
    else if (text == "request_uri")
        field = Field::request_uri;
    else if (text == "user_agent")
        field = Field::user_agent;
    else if (text == "from")
        field = Field::from;
    else if (text == "to")
        field = Field::to;
    else if (text.starts_with("header:") && text.size() > 7) {
        std::string name = lower(text.substr(7));
        // Headers the parser already located: reuse its span, no second search.
        if (name == "user-agent")
            field = Field::user_agent;
        else if (name == "from" || name == "f")
            field = Field::from;
        else if (name == "to" || name == "t")
            field = Field::to;
        else if (name == "call-id" || name == "i")
            field = Field::call_id;
        else if (name == "cseq")
            field = Field::cseq;
        else {
            field = Field::header;
            header = std::move(name);
        }
    } else {
        return false;
    }
    return true;
}

const char* to_string(RuleAction a) noexcept {
    switch (a) {
        case RuleAction::drop: return "drop";
        case RuleAction::allow: return "allow";
        case RuleAction::route: return "route";
    }
    return "unknown";
}

CompiledRules::~CompiledRules() {
    for (auto& d : dbs_) hs_free_database(d.db);
}

Result<std::shared_ptr<const CompiledRules>> CompiledRules::build(std::span<const RuleSpec> rules,
                                                                  std::span<const std::string> pool_names) {
    std::shared_ptr<CompiledRules> out(new CompiledRules());
    std::map<FieldKey, std::vector<uint32_t>> groups;
    auto where = [&](size_t i) { return "rule '" + rules[i].name + "' (rules[" + std::to_string(i) + "])"; };
    for (size_t i = 0; i < rules.size(); ++i) {
        const auto& r = rules[i];
        RuleInfo info;
        info.name = r.name;
        info.action = r.action;
        if (!parse_field(r.field, info.field, info.header))
            return Result<std::shared_ptr<const CompiledRules>>::fail(where(i) + ": '" + r.field +
                                                                      "' is not a rule field");
        if (r.pattern.empty()) return Result<std::shared_ptr<const CompiledRules>>::fail(where(i) + ": empty pattern");
        if (r.action == RuleAction::route) {
            info.route_pool = r.route_pool;
            if (!pool_names.empty()) {
                auto it = std::find(pool_names.begin(), pool_names.end(), r.route_pool);
                if (it == pool_names.end())
                    return Result<std::shared_ptr<const CompiledRules>>::fail(where(i) + ": route_pool '" +
                                                                              r.route_pool + "' is not a pool");
                info.route_pool_index = static_cast<uint32_t>(it - pool_names.begin());
            }
        }
        groups[FieldKey{info.field, info.header}].push_back(static_cast<uint32_t>(i));
        out->rules_.push_back(std::move(info));
    }
    if (groups.size() > kMaxDatabases)
        return Result<std::shared_ptr<const CompiledRules>>::fail("rules inspect " + std::to_string(groups.size()) +
                                                                  " distinct fields, at most " +
                                                                  std::to_string(kMaxDatabases));
    for (auto& [key, ids] : groups) {
        std::vector<const char*> exprs;
        std::vector<unsigned> flags;
        for (uint32_t id : ids) {
            exprs.push_back(rules[id].pattern.c_str());
            flags.push_back(HS_FLAG_SINGLEMATCH | HS_FLAG_DOTALL | (rules[id].caseless ? HS_FLAG_CASELESS : 0u));
        }
        hs_database_t* db = nullptr;
        hs_compile_error_t* err = nullptr;
        if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(ids.size()), HS_MODE_BLOCK,
                             nullptr, &db, &err) != HS_SUCCESS) {
            std::string msg;
            if (err && err->expression >= 0 && static_cast<size_t>(err->expression) < ids.size()) {
                uint32_t id = ids[static_cast<size_t>(err->expression)];
                msg = where(id) + ": pattern '" + rules[id].pattern + "': " + err->message;
            } else {
                msg = std::string("rules on field '") + rules[ids.front()].field +
                      "': " + (err ? err->message : "Hyperscan compile failed");
            }
            hs_free_compile_error(err);
            return Result<std::shared_ptr<const CompiledRules>>::fail(std::move(msg));
        }
        out->dbs_.push_back(FieldDb{key.field, key.header, db, ids.front()});
    }
    std::sort(out->dbs_.begin(), out->dbs_.end(),
              [](const FieldDb& a, const FieldDb& b) { return a.first_rule < b.first_rule; });
    return std::shared_ptr<const CompiledRules>(std::move(out));
}

RuleScratch::~RuleScratch() {
    if (s_) hs_free_scratch(s_);
}

RuleScratch& RuleScratch::operator=(RuleScratch&& o) noexcept {
    if (this != &o) {
        if (s_) hs_free_scratch(s_);
        s_ = o.s_;
        o.s_ = nullptr;
    }
    return *this;
}

Status RuleScratch::reserve(const CompiledRules& rules) {
    for (const auto& d : rules.dbs_) {
        if (hs_alloc_scratch(d.db, &s_) != HS_SUCCESS) return Status::fail("Hyperscan scratch allocation failed");
    }
    return ok_status();
}

Result<RuleScratch> RuleScratch::clone() const {
    RuleScratch out;
    if (s_ && hs_clone_scratch(s_, &out.s_) != HS_SUCCESS)
        return Result<RuleScratch>::fail("Hyperscan scratch clone failed");
    return out;
}

Result<RuleCache> RuleCache::create(const CompiledRules& rules, uint32_t entries, uint64_t seed) {
    if (entries < 16 || entries > (1u << 16) || !std::has_single_bit(entries))
        return Result<RuleCache>::fail("rule memo: " + std::to_string(entries) +
                                       " entries per database, must be a power of two in [16, 65536]");
    RuleCache c;
    c.databases_ = rules.dbs_.size();
    const uint32_t sets = entries / kWays;
    c.set_mask_ = sets - 1;
    c.seed_ = seed;
    if (c.databases_) {
        c.sets_ = TableArray<Set>(c.databases_ * sets);
        c.slots_ = TableArray<Entry>(c.databases_ * entries);
    }
    return c;
}

uint64_t RuleCache::hash(size_t db, const uint8_t* value, size_t length) const noexcept {
    return XXH3_64bits_withSeed(value, length, seed_ + db);
}

namespace {

// `used` with `way` marked; when that would mark every way, only `way`
// (so `used` never has all bits set and store() always finds a stale way).
uint8_t mark_used(uint8_t used, int way) noexcept {
    const unsigned u = used | 1u << way;
    return static_cast<uint8_t>(u == 0xFF ? 1u << way : u);
}

}  // namespace

uint32_t RuleCache::find(size_t db, uint64_t h, const uint8_t* value, size_t length) noexcept {
    const size_t set_index = set_of(db, h);
    Set& set = sets_[set_index];
    const auto tag = static_cast<uint32_t>(h >> 32);
    static_assert(kWays == 8);
#if defined(__SSE2__)
    const __m128i want = _mm_set1_epi32(static_cast<int>(tag));
    const auto* tags = reinterpret_cast<const __m128i*>(set.tag);
    unsigned candidates = unsigned(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_load_si128(tags), want)))) |
                          unsigned(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_load_si128(tags + 1), want))))
                              << 4;
#else
    unsigned candidates = 0;
    for (uint32_t w = 0; w < kWays; ++w) candidates |= unsigned(set.tag[w] == tag) << w;
#endif
    const Entry* ways = &slots_[set_index * kWays];
    for (; candidates; candidates &= candidates - 1) {
        const int w = std::countr_zero(candidates);
        if (set.length[w] == length && std::memcmp(ways[w].bytes, value, length) == 0) {
            set.used = mark_used(set.used, w);
            return ways[w].rule;
        }
    }
    return kMiss;
}

void RuleCache::store(size_t db, uint64_t h, const uint8_t* value, size_t length, uint32_t rule) noexcept {
    const size_t set_index = set_of(db, h);
    Set& set = sets_[set_index];
    // An empty way, else the first not used since `used` last filled up.
    unsigned free = 0, stale = 0;
    for (uint32_t w = 0; w < kWays; ++w) {
        free |= unsigned(set.length[w] == 0) << w;
        stale |= unsigned(!(set.used >> w & 1)) << w;
    }
    const int w = std::countr_zero(free ? free : stale);  // `used` never has all bits set
    Entry& e = slots_[set_index * kWays + w];
    e.rule = rule;
    std::memcpy(e.bytes, value, length);
    set.tag[w] = static_cast<uint32_t>(h >> 32);
    set.length[w] = static_cast<uint16_t>(length);
    set.used = mark_used(set.used, w);
}

namespace {

// Lowest rule of database `db` that matches `value`, or kNoRule.
uint32_t scan_field(hs_database* db, uint32_t first_rule, const uint8_t* value, uint32_t length, hs_scratch* scratch,
                    bool& failed) noexcept {
    MatchContext m{kNoRule, first_rule};
    hs_error_t e = hs_scan(db, reinterpret_cast<const char*>(value), length, 0, scratch, on_match, &m);
    failed = e != HS_SUCCESS && e != HS_SCAN_TERMINATED;
    return m.best;
}

}  // namespace

sip::HeaderSet headers_read(const CompiledRules& rules) noexcept {
    uint16_t bits = 0;
    for (const RuleInfo& r : rules.rules()) bits |= parsed_header(r.field);
    return sip::HeaderSet::only(bits);
}

RuleVerdict evaluate(const CompiledRules& rules, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                     RuleScratch& scratch, RuleCache* cache) noexcept {
    RuleVerdict v;
    if (rules.dbs_.empty() || msg.verdict != sip::Verdict::ok) return v;
    if (cache && !cache->enabled()) cache = nullptr;
    uint32_t best = kNoRule;
    // Counted in locals (registers across hs_scan), stored in the verdict once.
    uint16_t scans = 0, memo_hits = 0, scan_errors = 0;
    for (size_t i = 0; i < rules.dbs_.size(); ++i) {
        const auto& d = rules.dbs_[i];
        // Databases are ordered by their lowest rule: once a match beats
        // that, no later database can produce an earlier rule.
        if (best <= d.first_rule) break;
        sip::Span s = field_span(payload, len, msg, d.field, d.header);
        if (s.empty() || s.end() > len) continue;
        const uint8_t* value = payload + s.offset;
        uint32_t found;
        bool failed = false;
        if (cache && s.length <= RuleCache::kMaxValue) {
            const uint64_t h = cache->hash(i, value, s.length);
            found = cache->find(i, h, value, s.length);
            if (found != RuleCache::kMiss) {
                ++memo_hits;
            } else {
                found = scan_field(d.db, d.first_rule, value, s.length, scratch.s_, failed);
                ++scans;
                if (!failed) cache->store(i, h, value, s.length, found);
            }
        } else {
            found = scan_field(d.db, d.first_rule, value, s.length, scratch.s_, failed);
            ++scans;
        }
        scan_errors = static_cast<uint16_t>(scan_errors + failed);
        if (found < best) best = found;
    }
    v.scans = scans;
    v.memo_hits = memo_hits;
    v.scan_errors = scan_errors;
    if (best == kNoRule) return v;
    const RuleInfo& r = rules.rules_[best];
    v.rule = best;
    switch (r.action) {
        case RuleAction::drop: v.action = RuleVerdict::Action::drop; break;
        case RuleAction::allow: v.action = RuleVerdict::Action::allow; break;
        case RuleAction::route:
            v.action = RuleVerdict::Action::route;
            v.route_pool = r.route_pool_index;
            v.route_pool_name = r.route_pool;
            break;
    }
    return v;
}

}  // namespace siplb::protect

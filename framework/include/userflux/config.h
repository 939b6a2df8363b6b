#pragma once
// Run configuration: loading, validation (every error at once, each with its path), and the parsed run plan.
#include "userflux/plugin.h"
#include "userflux/result.h"

#include <QString>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <vector>

namespace Userflux {

class PluginHost;

inline constexpr const char *ConfigSchemaId = "userflux.config/1";

// Reads and parses a JSON config file. Errors: "io" (cannot read), "json" (syntax, with line/column).
Result<nlohmann::json> readJsonFile(const QString &path);

// Validates a whole config: the core's sections (name, target, load, thresholds, the sinks list) and, through
// their plugins, scenario/protocol/sink sections. Unknown fields are errors. `baseDir` is where relative data
// files are resolved (the config file's folder, or the run dir); empty skips file checks. Returns every error.
// Blocking (may read data files); call on the control thread (uses the host).
ConfigErrors validateConfig(const nlohmann::json &config, PluginHost &host, const QString &baseDir);

// "scenario.steps[1].method: must be one of GET, POST, ..." — one line per error.
QString formatConfigErrors(const ConfigErrors &errors);

// The load plan of a validated config.
struct Stage {
    std::chrono::microseconds duration{0};
    int target = 0;
};

struct RateStage {
    std::chrono::microseconds duration{0};
    double rate = 0; // iterations per second at the end of the stage
};

struct LoadPlan {
    enum class Model { ClosedStages, ClosedIterations, Open };
    Model model = Model::ClosedStages;
    std::vector<Stage> stages;          // ClosedStages
    int vus = 0;                        // ClosedIterations: vUsers; Open: max_vus (the pre-allocated pool)
    qint64 iterations = 0;              // ClosedIterations: per vUser
    std::optional<std::chrono::microseconds> maxDuration; // ClosedIterations: safety bound
    std::vector<RateStage> rateStages;  // Open
    std::optional<double> startRate;    // Open: the rate at t = 0 (default: the first stage's rate)
    std::chrono::microseconds gracefulStop{std::chrono::seconds(30)};
    int workers = 0;                    // 0: one per core the run may use

    // Peak vUsers of the plan (Open: the pool size).
    int maxVus() const;
    // Planned length (stages: sum of stage durations; ClosedIterations: maxDuration or 0 = unknown).
    std::chrono::microseconds plannedDuration() const;
    // ClosedStages: the vUser target at `t` since start: linear from the previous stage's target (0 before the
    // first stage) to this stage's target; after the last stage, that stage's target. Pure.
    double targetAt(std::chrono::microseconds t) const;
    // Open: the arrival rate at `t` (iterations/s), linear from the previous stage's rate (startRate, or the first
    // stage's own rate, before the first stage); 0 after the plan. Pure.
    double rateAt(std::chrono::microseconds t) const;
    // Open: when the k-th iteration (0-based) is due: the t where the integral of the rate from 0 reaches k, so
    // iteration 0 is due at 0 and a constant 200/s over 5 s schedules exactly 1000. nullopt past the plan. Pure.
    std::optional<std::chrono::microseconds> arrivalTime(qint64 k) const;
};

// Parses "load" of a validated config (call validateConfig first; a malformed section gives an error).
Result<LoadPlan> parseLoadPlan(const nlohmann::json &load);

} // namespace Userflux

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

struct LoadPlan {
    enum class Model { ClosedStages, ClosedIterations };
    Model model = Model::ClosedStages;
    std::vector<Stage> stages;          // ClosedStages
    int vus = 0;                        // ClosedIterations
    qint64 iterations = 0;              // ClosedIterations: per vUser
    std::optional<std::chrono::microseconds> maxDuration; // ClosedIterations: safety bound
    std::chrono::microseconds gracefulStop{std::chrono::seconds(30)};
    int workers = 0;                    // 0: one per core the run may use

    // Peak vUsers of the plan.
    int maxVus() const;
    // Planned length (ClosedStages: sum of stage durations; ClosedIterations: maxDuration or 0 = unknown).
    std::chrono::microseconds plannedDuration() const;
    // ClosedStages: the vUser target at `t` since start: linear from the previous stage's target (0 before the
    // first stage) to this stage's target; after the last stage, that stage's target. Pure.
    double targetAt(std::chrono::microseconds t) const;
};

// Parses "load" of a validated config (call validateConfig first; a malformed section gives an error).
Result<LoadPlan> parseLoadPlan(const nlohmann::json &load);

} // namespace Userflux

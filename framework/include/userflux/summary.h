#pragma once
// Builds summary.json (the run contract's aggregates) from merged run statistics. Pure; any thread.
#include "userflux/runstats.h"
#include "userflux/thresholds.h"

#include <QDateTime>
#include <QString>
#include <QStringList>
#include <nlohmann/json.hpp>

#include <vector>

namespace Userflux {

inline constexpr const char *SummarySchemaId = "userflux.summary/1";

struct SummaryInput {
    QString runId;
    bool final = false;
    QString state;                 // "running", "finished", "aborted", "failed"
    QDateTime startedAt;           // UTC
    QDateTime endedAt;             // UTC; invalid while running
    double durationS = 0;          // monotonic run length so far
    QString configName;
    QString model;                 // "closed"
    const RunStats *totals = nullptr;
    std::vector<nlohmann::json> timeseries; // final only
    QStringList endpointOrder;     // scenario's declared endpoints
    int vusMax = 0;
    qint64 retries = 0;
    const std::vector<Threshold> *thresholds = nullptr; // evaluated when final
};

nlohmann::json buildSummary(const SummaryInput &input);

// True when every evaluated threshold in a summary passed (or there were none).
bool thresholdsPassed(const nlohmann::json &summary);

QString rfc3339(const QDateTime &utc);

} // namespace Userflux

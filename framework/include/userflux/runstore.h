#pragma once
// The runs root on disk: runs/<run_id>/ and the contract files inside it (config.json, status.json,
// timeseries.ndjson, summary.json, logs.txt).
//
// Safety: every run id that comes from outside is checked with isValidRunId() before it touches the file
// system; an invalid id gives an "invalid_run_id" error (or an empty path from runDir()). Data files named by a
// config are copied into the run dir only when they stay inside the config's folder.
//
// Threading: a RunStore holds only its root path; it can be copied and used from any thread, but two writers
// of the same status.json must take turns (the run contract gives every file one writer at a time).
// Blocking: every method except the path helpers does file I/O.
#include "userflux/result.h"

#include <QString>
#include <QStringList>
#include <nlohmann/json.hpp>

#include <vector>

namespace Userflux {

inline constexpr const char *StatusSchemaId = "userflux.status/1";

// The live figures of a run as the daemon's API reports them (GET /api/v1/runs/{id} "live").
struct LiveFigures {
    double elapsedS = 0;   // end of the last bucket (t_s + duration_s), 0 without buckets
    int vus = 0;           // last bucket's vus
    double rps = 0;        // last bucket's throughput_rps
    double p95Ms = -1;     // last bucket's latency_ms.p95; < 0 when that bucket had no latency block
    qint64 requests = 0;   // summed over buckets
    qint64 ok = 0;         // summed over buckets
    qint64 errors = 0;     // summed over buckets
    double errorRate = 0;  // errors / (ok + errors), 0 when nothing finished

    // {"elapsed_s","vus","rps","p95_ms" (null when unknown),"requests","ok","errors","error_rate"}
    nlohmann::json toJson() const;
    static LiveFigures fromBuckets(const std::vector<nlohmann::json> &buckets);
};

// Reads timeseries.ndjson incrementally: refresh() parses only the whole lines appended since the last call,
// so a live view can poll a long run cheaply. A torn last line (no '\n' yet) is left for the next refresh; a
// line that is not a JSON object is skipped and counted. If the file shrinks (replaced), it starts over.
// Not thread-safe; blocking (file I/O).
class TimeseriesReader {
public:
    explicit TimeseriesReader(const QString &path = {});
    // Reads what was appended. A missing file is not an error (no buckets yet).
    Result<void> refresh();
    const std::vector<nlohmann::json> &buckets() const { return m_buckets; }
    int skippedLines() const { return m_skipped; }
    QString path() const { return m_path; }

private:
    QString m_path;
    qint64 m_offset = 0;
    std::vector<nlohmann::json> m_buckets;
    int m_skipped = 0;
};

class RunStore {
public:
    // `root` should be absolute (see resolveRoot()); it is created on the first createRun().
    explicit RunStore(const QString &root);

    // The runs root: `cliValue` (--runs-dir) when not empty, else env USERFLUX_RUNS_DIR, else ./runs; made
    // absolute against the current directory and cleaned. Does not touch the file system.
    static QString resolveRoot(const QString &cliValue);
    // Now as RFC 3339 UTC with milliseconds: "2026-12-03T18:01:02.123Z".
    static QString now();

    QString root() const { return m_root; }

    // Creates a run: a fresh unique id, runs/<id>/, the data files (relative paths as written in the config,
    // resolved against `configDir`, copied to the same relative paths in the run dir), config.json ("schema"
    // added when absent) and status.json in state "created" (both written atomically, status.json last).
    // Errors: "invalid_data_file" (absolute path, a ".." escape, a reserved contract file name, missing or
    // unreadable file), "io". Nothing is left behind on error.
    Result<QString> createRun(const nlohmann::json &config, const QString &configDir, const QStringList &dataFiles);

    // <root>/<id>, or an empty string when `runId` is not a valid run id. Pure.
    QString runDir(const QString &runId) const;
    // True when <root>/<id> is a folder (false for invalid ids).
    bool exists(const QString &runId) const;

    // status.json of a run. Errors: "invalid_run_id", "not_found" (no such run or no status.json), "io", "json".
    Result<nlohmann::json> readStatus(const QString &runId) const;
    // Writes status.json atomically. Errors: "invalid_run_id", "not_found", "io".
    Result<void> writeStatus(const QString &runId, const nlohmann::json &status);
    // config.json of a run (same errors as readStatus).
    Result<nlohmann::json> readConfig(const QString &runId) const;
    // summary.json of a run (same errors; "not_found" also when the agent has not written one yet).
    Result<nlohmann::json> readSummary(const QString &runId) const;
    // Every bucket of timeseries.ndjson (a torn last line dropped); empty when the file does not exist yet.
    Result<std::vector<nlohmann::json>> readTimeseries(const QString &runId) const;
    // Path of a run's timeseries.ndjson (empty for an invalid id).
    QString timeseriesPath(const QString &runId) const;

    // Appends one line per line of `text` to the run's logs.txt: "<RFC 3339 UTC> [<source>] <line>".
    Result<void> appendLog(const QString &runId, const QString &source, const QString &text);

    // Run ids in the root (folders with a valid id; anything else ignored), sorted ascending.
    QStringList runIds() const;

    // True for "finished", "failed", "aborted".
    static bool isTerminalState(const QString &state);
    // A fresh status.json object in state "created".
    static nlohmann::json initialStatus(const QString &runId);

private:
    Result<nlohmann::json> readJson(const QString &runId, const char *file) const;

    QString m_root;
};

} // namespace Userflux

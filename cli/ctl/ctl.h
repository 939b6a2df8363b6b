#pragma once
// userfluxctl: the headless command line over the control API (Userflux::Control::Client). It starts userfluxd
// for the runs root when none answers, and reads only finished artifacts (summary.json) behind its back.
//
// Ownership and threading: a Ctl lives on the main thread, which runs the event loop (run() is a coroutine;
// main() waits for it with QCoro::waitFor). Output goes to stdout (results) and stderr (errors, progress
// notes). Exit codes follow CONTRACT.md: 0 ok, 1 run failed, 2 usage or config, 3 environment, 99 thresholds
// failed, 130 aborted.
#include "userflux/controlclient.h"
#include "userflux/result.h"

#include <QObject>
#include <QString>
#include <QStringList>

#include <QCoroTask>

#include <nlohmann/json.hpp>

#include <memory>

namespace Userflux {

struct CtlOptions {
    QString command;          // "run", "status", ...; empty with --help / --version
    QStringList positional;   // the command's arguments
    QString runsDir;          // --runs-dir as given (resolved by RunStore::resolveRoot)
    QStringList pluginDirs;   // --plugin-dir
    bool follow = false;      // run --follow
    bool report = false;      // run --report
    QString name;             // run --name
    bool help = false;
    bool version = false;
};

// Parses argv (argv[0] first). Errors (code "usage") mean exit code 2.
Result<CtlOptions> parseCtlArguments(const QStringList &arguments);

class Ctl : public QObject {
    Q_OBJECT
public:
    explicit Ctl(QObject *parent = nullptr);
    ~Ctl() override;

    // Runs one command line to completion and returns the process exit code.
    QCoro::Task<int> run(QStringList arguments);

    static QString usageText();

private:
    QCoro::Task<int> cmdRun(CtlOptions options);
    QCoro::Task<int> cmdStatus(CtlOptions options);
    QCoro::Task<int> cmdList(CtlOptions options);
    QCoro::Task<int> cmdStop(CtlOptions options);
    QCoro::Task<int> cmdReport(CtlOptions options);
    QCoro::Task<int> cmdPlugins(CtlOptions options);
    int cmdValidate(const CtlOptions &options);

    // Follows a run to its end; returns the exit code of the run (or 130 after Ctrl-C).
    QCoro::Task<int> follow(QString runId, nlohmann::json config);
    // The compact result block of an ended run; returns the run's exit code.
    QCoro::Task<int> printResult(QString runId, nlohmann::json status, nlohmann::json live, bool interrupted);
    // Generates the report of a run dir: 0, 1 (failed) or 3 (no Python with matplotlib / no analytics).
    QCoro::Task<int> generateReport(QString runDir, bool quiet);
    // Connects (starting a daemon when needed); prints the error and returns false on failure.
    QCoro::Task<bool> connectDaemon(CtlOptions options);

    std::unique_ptr<Control::Client> m_client;
    QString m_runsRoot;
};

} // namespace Userflux

// userflux-agent: runs one run from its run directory. Normally launched by userfluxd.
#include "agent.h"

#include "userflux/signalwatcher.h"

#include <QCommandLineParser>
#include <QCoreApplication>

#include <csignal>
#include <cstdio>

int main(int argc, char *argv[])
{
    // The daemon reads our stdout through a pipe; if it dies we must still finish the run and write artifacts.
    std::signal(SIGPIPE, SIG_IGN);
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("userflux-agent"));
    QCoreApplication::setApplicationVersion(QStringLiteral(USERFLUX_VERSION));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Userflux load generator: runs the run in --run-dir and writes its artifacts there."));
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption runDir(QStringLiteral("run-dir"), QStringLiteral("The run directory (holds config.json)."), QStringLiteral("dir"));
    QCommandLineOption pluginDir(QStringLiteral("plugin-dir"), QStringLiteral("Extra plugin folder (repeatable)."), QStringLiteral("dir"));
    parser.addOption(runDir);
    parser.addOption(pluginDir);
    parser.process(app);
    if (!parser.isSet(runDir)) {
        std::fprintf(stderr, "userflux-agent: --run-dir is required\n");
        return Userflux::AgentInvalidConfig;
    }

    Userflux::Agent agent(parser.value(runDir), parser.values(pluginDir));
    Userflux::SignalWatcher watcher({SIGINT, SIGTERM});
    QObject::connect(&watcher, &Userflux::SignalWatcher::received, &agent, [&agent](int) { agent.stop(); });
    QObject::connect(&agent, &Userflux::Agent::finished, &app, [](int code) { QCoreApplication::exit(code); }, Qt::QueuedConnection);
    const int early = agent.start();
    if (early >= 0)
        return early;
    return app.exec();
}

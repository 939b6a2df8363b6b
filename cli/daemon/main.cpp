// userfluxd: thin entry point over Userflux::Daemon (cli/daemon/daemon.h).
#include "daemon.h"
#include "userflux/signalwatcher.h"

#include <QCoreApplication>

#include <csignal>
#include <cstdio>

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("userfluxd"));
    QCoreApplication::setApplicationVersion(QStringLiteral(USERFLUX_VERSION));

    Userflux::Result<Userflux::DaemonOptions> options = Userflux::parseDaemonArguments(QCoreApplication::arguments());
    if (!options) {
        std::fprintf(stderr, "userfluxd: %s\nTry 'userfluxd --help'.\n", qPrintable(options.error().message));
        return 2;
    }
    if (options->showHelp) {
        std::fputs(qPrintable(options->helpText), stdout);
        return 0;
    }
    if (options->showVersion) {
        std::printf("userfluxd %s\n", USERFLUX_VERSION);
        return 0;
    }

    // A client that went away mid-answer must not kill the daemon.
    std::signal(SIGPIPE, SIG_IGN);
    Userflux::SignalWatcher watcher({SIGTERM, SIGINT, SIGHUP});
    Userflux::Daemon daemon(std::move(*options));
    QObject::connect(&watcher, &Userflux::SignalWatcher::received, &daemon, [&daemon](int sig) {
        daemon.shutdown(QStringLiteral("signal %1").arg(sig == SIGTERM ? QStringLiteral("SIGTERM")
                                                        : sig == SIGINT ? QStringLiteral("SIGINT")
                                                                        : QStringLiteral("SIGHUP")));
    });
    QObject::connect(&daemon, &Userflux::Daemon::finished, &app, &QCoreApplication::exit, Qt::QueuedConnection);

    if (Userflux::Result<void> started = daemon.start(); !started) {
        std::fprintf(stderr, "userfluxd: %s\n", qPrintable(started.error().message));
        return started.error().code == QLatin1String("already_running") ? 3 : 1;
    }
    return app.exec();
}

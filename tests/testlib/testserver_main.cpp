// userflux-testserver: the scriptable test server as a process, for the Python integration tests.
#include "scriptableserver.h"

#include "userflux/atomicfile.h"

#include <QCommandLineParser>
#include <QCoreApplication>

#include <cstdio>

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("userflux-testserver"));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "Scriptable HTTP/1.1 test server: the path and query choose the behaviour (see scriptableserver.h). "
        "Counters at GET /__stats, reset by POST /__reset. Listens on loopback only."));
    parser.addHelpOption();
    const QCommandLineOption portOpt(QStringLiteral("port"), QStringLiteral("Port; 0 picks a free one (default)."),
                                     QStringLiteral("N"), QStringLiteral("0"));
    const QCommandLineOption portFileOpt(QStringLiteral("port-file"),
                                         QStringLiteral("Write the port there (atomically) once listening."),
                                         QStringLiteral("PATH"));
    const QCommandLineOption idleOpt(QStringLiteral("idle-timeout-ms"),
                                     QStringLiteral("Close idle keep-alive connections after N ms (default 60000)."),
                                     QStringLiteral("N"), QStringLiteral("60000"));
    parser.addOptions({portOpt, portFileOpt, idleOpt});
    parser.process(app);

    bool ok = false;
    const uint port = parser.value(portOpt).toUInt(&ok);
    if (!ok || port > 65535) {
        std::fprintf(stderr, "userflux-testserver: --port: expected 0..65535\n");
        return 2;
    }
    const int idle = parser.value(idleOpt).toInt(&ok);
    if (!ok || idle < 0) {
        std::fprintf(stderr, "userflux-testserver: --idle-timeout-ms: expected a non-negative integer\n");
        return 2;
    }

    Userflux::Test::ScriptableServer server;
    server.server().setIdleTimeout(idle);
    // Loopback only: this server misbehaves on purpose and must never face a network.
    if (!server.listen(QHostAddress::LocalHost, quint16(port))) {
        std::fprintf(stderr, "userflux-testserver: cannot listen on 127.0.0.1:%u: %s\n", port,
                     qPrintable(server.errorString()));
        return 1;
    }
    if (parser.isSet(portFileOpt)) {
        auto written = Userflux::writeFileAtomically(parser.value(portFileOpt), QByteArray::number(server.port()) + '\n');
        if (!written) {
            std::fprintf(stderr, "userflux-testserver: %s\n", qPrintable(written.error().message));
            return 1;
        }
    }
    std::printf("userflux-testserver listening on %s\n", qPrintable(server.url(QStringLiteral("")).toString()));
    std::fflush(stdout);
    return app.exec();
}

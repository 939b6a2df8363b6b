// userflux-demo-gateway: the demo Gateway API the quick start loads. A thin CLI over Userflux::Demo::Gateway.
#include "gateway.h"

#include "userflux/atomicfile.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QHostInfo>

#include <cstdio>

using Userflux::Demo::Gateway;
using Userflux::Demo::GatewayOptions;

namespace {

int usageError(const QString &message)
{
    std::fprintf(stderr, "userflux-demo-gateway: %s\n", qPrintable(message));
    return 2;
}

} // namespace

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("userflux-demo-gateway"));
    QCoreApplication::setApplicationVersion(QStringLiteral(USERFLUX_VERSION));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "A demo e-commerce Gateway API that simulates fan-out to backend services (auth, catalog, inventory, "
        "reviews, orders, payments), for trying Userflux. Routes: POST /api/login, GET /api/items, "
        "GET /api/items/{id}, POST /api/orders, GET /health; counters at GET /__gateway/stats, "
        "reset by POST /__gateway/reset."));
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption listenOpt(QStringLiteral("listen"),
                                       QStringLiteral("Address to listen on (default 127.0.0.1)."),
                                       QStringLiteral("ADDR"), QStringLiteral("127.0.0.1"));
    const QCommandLineOption allowRemoteOpt(QStringLiteral("allow-remote"),
                                            QStringLiteral("Allow a non-loopback --listen address."));
    const QCommandLineOption portOpt(QStringLiteral("port"),
                                     QStringLiteral("Port to listen on; 0 picks a free one (default 8080)."),
                                     QStringLiteral("N"), QStringLiteral("8080"));
    const QCommandLineOption errorRateOpt(
        QStringLiteral("error-rate"),
        QStringLiteral("Fraction 0..1 of API requests answered 5xx by a failing backend (default 0)."),
        QStringLiteral("P"), QStringLiteral("0"));
    const QCommandLineOption latencyOpt(
        QStringLiteral("latency-scale"),
        QStringLiteral("Multiplies simulated backend latencies; 0 answers at once (default 1.0)."),
        QStringLiteral("F"), QStringLiteral("1.0"));
    const QCommandLineOption seedOpt(QStringLiteral("seed"),
                                     QStringLiteral("Seed for latencies and injected errors (default 1)."),
                                     QStringLiteral("N"), QStringLiteral("1"));
    const QCommandLineOption portFileOpt(QStringLiteral("port-file"),
                                         QStringLiteral("Write the port there (atomically) once listening."),
                                         QStringLiteral("PATH"));
    parser.addOptions({listenOpt, allowRemoteOpt, portOpt, errorRateOpt, latencyOpt, seedOpt, portFileOpt});
    parser.process(app);

    GatewayOptions options;
    const QString listen = parser.value(listenOpt);
    if (listen.compare(QLatin1String("localhost"), Qt::CaseInsensitive) == 0)
        options.address = QHostAddress::LocalHost;
    else if (!options.address.setAddress(listen))
        return usageError(QStringLiteral("--listen: not an IP address: %1").arg(listen));
    // The demo has no authentication worth the name: exposing it beyond this machine must be a decision.
    if (!options.address.isLoopback() && !parser.isSet(allowRemoteOpt))
        return usageError(QStringLiteral("--listen %1 is not a loopback address; add --allow-remote to accept "
                                         "connections from other machines")
                              .arg(listen));
    bool ok = false;
    const uint port = parser.value(portOpt).toUInt(&ok);
    if (!ok || port > 65535)
        return usageError(QStringLiteral("--port: expected 0..65535, got %1").arg(parser.value(portOpt)));
    options.port = quint16(port);
    options.errorRate = parser.value(errorRateOpt).toDouble(&ok);
    if (!ok || !(options.errorRate >= 0.0 && options.errorRate <= 1.0))
        return usageError(QStringLiteral("--error-rate: expected 0..1, got %1").arg(parser.value(errorRateOpt)));
    options.latencyScale = parser.value(latencyOpt).toDouble(&ok);
    if (!ok || !(options.latencyScale >= 0.0 && options.latencyScale <= 1000.0))
        return usageError(
            QStringLiteral("--latency-scale: expected 0..1000, got %1").arg(parser.value(latencyOpt)));
    options.seed = parser.value(seedOpt).toULongLong(&ok);
    if (!ok)
        return usageError(QStringLiteral("--seed: expected a non-negative integer, got %1").arg(parser.value(seedOpt)));

    Gateway gateway(options);
    if (auto started = gateway.start(); !started) {
        std::fprintf(stderr, "userflux-demo-gateway: %s\n", qPrintable(started.error().message));
        return 1;
    }
    if (parser.isSet(portFileOpt)) {
        const QString path = parser.value(portFileOpt);
        if (auto written = Userflux::writeFileAtomically(path, QByteArray::number(gateway.port()) + '\n');
            !written) {
            std::fprintf(stderr, "userflux-demo-gateway: %s\n", qPrintable(written.error().message));
            return 1;
        }
    }
    std::printf("userflux-demo-gateway listening on %s\n", qPrintable(gateway.baseUrl().toString()));
    std::fflush(stdout);
    return app.exec();
}

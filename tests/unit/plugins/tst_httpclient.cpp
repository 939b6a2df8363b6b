// The http protocol plugin against the scriptable loopback server: statuses are responses (never transport
// errors), transport failures are classified by kind, deadlines hold, cancellation interrupts. Cleartext HTTP/1.1
// goes through our own engine (framing, keep-alive per vUser, each request sent once: QNAM re-sends finished
// requests on close-delimited bodies); the QNAM pitfalls (redirects, h2c against HTTP/1.1, proxies from the
// environment) are handled on the QNAM path.
#include <userflux/pluginhost.h>

#include "scriptableserver.h"

#include <QElapsedTimer>
#include <QEventLoop>
#include <QTcpServer>
#include <QTest>
#include <QTimer>

using namespace Userflux;
using namespace std::chrono;

class TestHttpClient : public QObject {
    Q_OBJECT

    PluginHost *m_host = nullptr;
    IProtocolPlugin *m_plugin = nullptr;
    Test::ScriptableServer *m_server = nullptr;

    std::unique_ptr<IProtocolClient> client(const QString &httpVersion = QStringLiteral("auto"))
    {
        nlohmann::json config = {{"target", {{"base_url", "http://127.0.0.1"}, {"http_version", httpVersion.toStdString()}}}};
        return m_plugin->createClient(ProtocolOptions{config});
    }

    QUrl url(const QString &pathAndQuery) const
    {
        return QUrl(QStringLiteral("http://127.0.0.1:%1%2").arg(m_server->port()).arg(pathAndQuery));
    }

    static ProtocolResponse exec(IProtocolClient &c, ProtocolRequest req, bool cancelSoon = false)
    {
        QEventLoop loop;
        ProtocolResponse out;
        bool done = false;
        bool inside = true;
        bool calledInside = false;
        const quint64 h = c.send(std::move(req), [&](ProtocolResponse &&r) {
            calledInside = inside;
            out = std::move(r);
            done = true;
            loop.quit();
        });
        inside = false;
        if (cancelSoon)
            QTimer::singleShot(100, &loop, [&] { c.cancel(h); });
        QTimer::singleShot(15000, &loop, &QEventLoop::quit);
        if (!done)
            loop.exec();
        if (!done)
            qFatal("no callback within 15 s");
        if (calledInside)
            qFatal("the callback ran inside send()");
        return out;
    }

    static ProtocolRequest get(const QUrl &u, milliseconds timeout = milliseconds(5000))
    {
        ProtocolRequest r;
        r.method = "GET";
        r.url = u;
        r.timeout = timeout;
        r.affinity = 1;
        r.wantBody = true;
        return r;
    }

    static qint64 ms(const ProtocolResponse &r) { return duration_cast<milliseconds>(r.end - r.start).count(); }

private Q_SLOTS:
    void initTestCase()
    {
        // A proxy in the environment must be ignored: every target is reached directly.
        qputenv("http_proxy", "http://127.0.0.1:9");
        m_host = new PluginHost({QStringLiteral(USERFLUX_TEST_PLUGIN_DIR)});
        auto p = m_host->protocol("http");
        QVERIFY2(p, qPrintable(p ? QString() : p.error().message));
        m_plugin = *p;
        m_server = new Test::ScriptableServer(this);
        QVERIFY(m_server->listen());
    }
    void cleanupTestCase() { delete m_host; }

    void okResponseWithTimingsAndBytes()
    {
        auto c = client();
        const auto r = exec(*c, get(url("/ok?bytes=1000")));
        QCOMPARE(r.error, ErrorKind::None);
        QCOMPARE(r.status, 200);
        QCOMPARE(r.bytesReceived, 1000);
        QCOMPARE(r.body.size(), 1000);
        QCOMPARE(r.protocol, QByteArray("http/1.1"));
        QVERIFY(r.start <= r.firstByte && r.firstByte <= r.end);
    }

    void statusesAreResponsesNotTransportErrors_data()
    {
        QTest::addColumn<int>("code");
        for (int code : {201, 204, 301, 400, 401, 404, 409, 429, 500, 502, 503})
            QTest::newRow(qPrintable(QString::number(code))) << code;
    }
    void statusesAreResponsesNotTransportErrors()
    {
        QFETCH(int, code);
        auto c = client();
        const auto r = exec(*c, get(url(QStringLiteral("/status/%1").arg(code))));
        QCOMPARE(r.status, code);
        QCOMPARE(r.error, ErrorKind::None);
    }

    void redirectsAreNotFollowed()
    {
        auto c = client();
        const auto r = exec(*c, get(url("/redirect?n=3")));
        QCOMPARE(r.status, 302);
        QCOMPARE(r.error, ErrorKind::None);
        QVERIFY(!headerValue(r.headers, "location").isEmpty());
    }

    void connectionRefused()
    {
        QTcpServer probe;
        QVERIFY(probe.listen(QHostAddress::LocalHost));
        const quint16 port = probe.serverPort();
        probe.close(); // nothing listens there now
        auto c = client();
        const auto r = exec(*c, get(QUrl(QStringLiteral("http://127.0.0.1:%1/").arg(port))));
        QCOMPARE(r.error, ErrorKind::ConnectRefused);
        QCOMPARE(r.status, 0);
    }

    void timeoutAtItsRealElapsedTime()
    {
        auto c = client();
        const auto r = exec(*c, get(url("/delay?ms=3000"), milliseconds(300)));
        QCOMPARE(r.error, ErrorKind::Timeout);
        QCOMPARE(r.status, 0);
        QVERIFY2(ms(r) >= 300 && ms(r) < 800, qPrintable(QString::number(ms(r))));
    }

    void resetMidBody()
    {
        auto c = client();
        ProtocolResponse r;
        // every=2: the 2nd request of the series is the one cut.
        for (int i = 0; i < 2; ++i)
            r = exec(*c, get(url("/reset-after?bytes=5000&every=2")));
        QCOMPARE(r.error, ErrorKind::Reset);
        QCOMPARE(r.status, 0);
    }

    void garbageIsAProtocolError()
    {
        auto c = client();
        const auto r = exec(*c, get(url("/garbage")));
        QVERIFY2(r.error == ErrorKind::Protocol || r.error == ErrorKind::Reset,
                 qPrintable(errorKindName(r.error) + ": " + r.errorMessage));
        QCOMPARE(r.status, 0);
    }

    void cancelInterrupts()
    {
        auto c = client();
        const auto r = exec(*c, get(url("/delay?ms=3000")), true);
        QCOMPARE(r.error, ErrorKind::Interrupted);
        QVERIFY(ms(r) < 1000);
    }

    void h2cAgainstHttp11ServerEndsAtTheDeadline()
    {
        auto c = client(QStringLiteral("h2c"));
        const auto r = exec(*c, get(url("/ok"), milliseconds(500)));
        // Either QNAM notices the HTTP/1.1 answer (protocol) or it hangs, as it does, until our deadline (timeout).
        QVERIFY2(r.error == ErrorKind::Timeout || r.error == ErrorKind::Protocol, qPrintable(errorKindName(r.error)));
        QVERIFY(ms(r) < 1500);
    }

    void headWithLengthAndNoBodyDoesNotHang()
    {
        auto c = client();
        ProtocolRequest req = get(url("/head-length"), milliseconds(2000));
        req.method = "HEAD";
        const auto r = exec(*c, req);
        QCOMPARE(r.error, ErrorKind::None);
        QCOMPARE(r.status, 200);
        QCOMPARE(r.bytesReceived, 0);
        QVERIFY(ms(r) < 1000);
    }

    // A body framed by the connection's close (no Content-Length, no chunking, Connection: close): each request
    // is sent exactly once, on its own connection, and its whole body arrives.
    void closeDelimitedBodiesAreSentOnce()
    {
        m_server->reset();
        auto c = client();
        for (int i = 0; i < 50; ++i) {
            ProtocolRequest req = get(url("/close-delimited?bytes=1000"));
            req.affinity = quint64(1 + i % 2);
            const auto r = exec(*c, req);
            QCOMPARE(r.error, ErrorKind::None);
            QCOMPARE(r.status, 200);
            QCOMPARE(r.bytesReceived, 1000);
        }
        const auto s = m_server->stats();
        QCOMPARE(c->retries(), 0);
        QCOMPARE(s.requestsReceived, quint64(50));
        QCOMPARE(s.connectionsAccepted, quint64(50));
        QCOMPARE(s.bodyBytesWritten, quint64(50 * 1000));
    }

    // Cleartext HTTP/1.1 is our own engine: one keep-alive connection per vUser, reused.
    void keepAliveConnectionPerVu()
    {
        m_server->reset();
        auto c = client();
        for (int i = 0; i < 20; ++i) {
            ProtocolRequest req = get(url("/ok?bytes=100"));
            req.affinity = quint64(1 + i % 2);
            const auto r = exec(*c, req);
            QCOMPARE(r.error, ErrorKind::None);
            QCOMPARE(r.bytesReceived, 100);
        }
        const auto s = m_server->stats();
        QCOMPARE(s.requestsReceived, quint64(20));
        QCOMPARE(s.connectionsAccepted, quint64(2));
    }

    void requestLineAndHost()
    {
        auto c = client();
        ProtocolRequest req = get(url("/headers?a=1&b=x%20y"));
        req.headers.append({QByteArray("X-Test"), QByteArray("yes")});
        const auto r = exec(*c, req);
        QCOMPARE(r.status, 200);
        const auto j = nlohmann::json::parse(r.body.toStdString());
        QCOMPARE(QString::fromStdString(j["target"]), QStringLiteral("/headers?a=1&b=x%20y"));
        QCOMPARE(QString::fromStdString(j["version"]), QStringLiteral("HTTP/1.1"));
        QString host, test;
        for (const auto &h : j["headers"]) {
            if (QString::fromStdString(h[0]).compare(QLatin1String("host"), Qt::CaseInsensitive) == 0)
                host = QString::fromStdString(h[1]);
            if (QString::fromStdString(h[0]) == QLatin1String("X-Test"))
                test = QString::fromStdString(h[1]);
        }
        QCOMPARE(host, QStringLiteral("127.0.0.1:%1").arg(m_server->port()));
        QCOMPARE(test, QStringLiteral("yes"));
    }

    void chunkedBodyWithLateLastChunk()
    {
        m_server->reset();
        auto c = client();
        for (int i = 0; i < 3; ++i) {
            const auto r = exec(*c, get(url("/chunked?chunks=3&chunk_bytes=10&last_delay_ms=50")));
            QCOMPARE(r.error, ErrorKind::None);
            QCOMPARE(r.status, 200);
            QCOMPARE(r.body, QByteArray(30, 'x'));
            QCOMPARE(r.bytesReceived, 30);
            QVERIFY2(ms(r) >= 50 && ms(r) < 1000, qPrintable(QString::number(ms(r))));
        }
        QCOMPARE(m_server->stats().connectionsAccepted, quint64(1));
    }

    // Connection: close on every 5th response: a new connection after it, nothing sent on the closed one.
    void connectionCloseIsHonoured()
    {
        m_server->reset();
        auto c = client();
        for (int i = 0; i < 20; ++i) {
            const auto r = exec(*c, get(url("/close-every?n=5")));
            QCOMPARE(r.error, ErrorKind::None);
            QCOMPARE(r.status, 200);
        }
        const auto s = m_server->stats();
        QCOMPARE(c->retries(), 0);
        QCOMPARE(s.requestsReceived, quint64(20));
        QCOMPARE(s.responsesCompleted, quint64(20));
        QCOMPARE(s.connectionsAccepted, quint64(4));
    }

    // No body for HEAD, 204 and 304 whatever Content-Length says, and the connection goes on.
    void bodilessResponsesKeepTheConnection()
    {
        m_server->reset();
        auto c = client();
        ProtocolRequest head = get(url("/head-length?bytes=1048576"), milliseconds(2000));
        head.method = "HEAD";
        for (int i = 0; i < 3; ++i) {
            for (const ProtocolRequest &req : {head, get(url("/no-content"), milliseconds(2000)),
                                               get(url("/not-modified"), milliseconds(2000))}) {
                const auto r = exec(*c, req);
                QCOMPARE(r.error, ErrorKind::None);
                QCOMPARE(r.bytesReceived, 0);
                QVERIFY(ms(r) < 500);
            }
        }
        const auto s = m_server->stats();
        QCOMPARE(s.requestsReceived, quint64(9));
        QCOMPARE(s.connectionsAccepted, quint64(1));
    }

    // A large body cut by a reset: the bytes that came are counted, and the next request works.
    void resetAfterPartOfALargeBody()
    {
        m_server->reset();
        auto c = client();
        const auto ok = exec(*c, get(url("/reset-after?bytes=2000000&every=2&cut=500000")));
        QCOMPARE(ok.error, ErrorKind::None);
        QCOMPARE(ok.bytesReceived, 2000000);
        const auto cut = exec(*c, get(url("/reset-after?bytes=2000000&every=2&cut=500000")));
        QCOMPARE(cut.error, ErrorKind::Reset);
        QCOMPARE(cut.status, 0);
        QCOMPARE(cut.bytesReceived, 500000);
        const auto again = exec(*c, get(url("/ok")));
        QCOMPARE(again.error, ErrorKind::None);
        QCOMPARE(c->retries(), 0);
        QCOMPARE(m_server->stats().requestsReceived, quint64(3));
    }

    // The server closes an idle keep-alive connection: the next request goes on a new one, without an error.
    void idleConnectionClosedByTheServer()
    {
        m_server->reset();
        m_server->server().setIdleTimeout(100);
        auto c = client();
        QCOMPARE(exec(*c, get(url("/ok"))).error, ErrorKind::None);
        QTest::qWait(300);
        const auto r = exec(*c, get(url("/ok")));
        m_server->server().setIdleTimeout(60000);
        QCOMPARE(r.error, ErrorKind::None);
        QCOMPARE(r.status, 200);
        const auto s = m_server->stats();
        QCOMPARE(s.requestsReceived, quint64(2) + quint64(c->retries()));
        QCOMPARE(s.connectionsAccepted, quint64(2));
    }

    void timeoutBeforeAnyResponseAndTheNextRequest()
    {
        auto c = client();
        const auto r = exec(*c, get(url("/delay?ms=2000"), milliseconds(200)));
        QCOMPARE(r.error, ErrorKind::Timeout);
        const auto next = exec(*c, get(url("/ok")));
        QCOMPARE(next.error, ErrorKind::None);
        QCOMPARE(next.status, 200);
    }

    void postBodyIsSent()
    {
        auto c = client();
        ProtocolRequest req = get(url("/echo"));
        req.method = "POST";
        req.body = "{\"a\":1}";
        req.headers.append({QByteArray("Content-Type"), QByteArray("application/json")});
        const auto r = exec(*c, req);
        QCOMPARE(r.status, 200);
        QCOMPARE(r.bytesSent, 7);
        QVERIFY2(r.body.contains("{\"a\":1}"), r.body.constData());
    }
};

QTEST_GUILESS_MAIN(TestHttpClient)
#include "tst_httpclient.moc"

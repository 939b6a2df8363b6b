// Userflux::Http::Server over real loopback sockets: framing, keep-alive, pipelining, incremental parsing,
// limits, errors and exact statistics.
#include "userflux/httpserver.h"

#include "rawhttpclient.h"

#include <QElapsedTimer>
#include <QTest>
#include <QTimer>

#include <memory>

using namespace Userflux;
using Userflux::Test::RawHttpClient;

namespace {

// A server whose handler answers "<method> <target> <body>" and records every request; some targets change
// the answer: /delay/N answers after N ms, /close answers with close, /head-len answers a 5-byte body.
struct Fixture {
    Http::Server server;
    QList<Http::Request> requests;
    std::function<void(const Http::Request &, Http::Responder)> custom;

    Fixture()
    {
        server.setHandler([this](const Http::Request &r, Http::Responder responder) {
            requests.append(r);
            if (custom) {
                custom(r, responder);
                return;
            }
            Http::Response response;
            response.body = r.method + ' ' + r.target + ' ' + r.body;
            if (r.path.startsWith(QLatin1String("/delay/"))) {
                QTimer::singleShot(r.path.mid(7).toInt(), [responder, response]() mutable {
                    responder.send(response);
                });
                return;
            }
            response.close = r.path == QLatin1String("/close");
            responder.send(response);
        });
        bool ok = server.listen(QHostAddress::LocalHost, 0);
        Q_ASSERT(ok);
    }
};

} // namespace

class TestHttpServer : public QObject {
    Q_OBJECT
private slots:
    void keepAliveReusesOneConnection();
    void requestSplitAtEveryByte();
    void requestByteByByte();
    void pipelinedRequestsAnsweredInOrder();
    void chunkedRequestBody();
    void connectionCloseFromClient();
    void connectionCloseFromServer();
    void http10ClosesUnlessKeepAlive();
    void garbageGets400AndClose_data();
    void garbageGets400AndClose();
    void goodRequestThenGarbage();
    void headLimitGives431();
    void bodyLimitGives413();
    void chunkedBodyLimitGives413();
    void idleConnectionsAreClosed();
    void busyConnectionIsNotIdle();
    void headResponseHasLengthButNoBody();
    void bodilessStatuses();
    void staleResponderIsIgnored();
    void writeRawAndAbortResets();
    void expectContinue();
    void queryAndPathDecoding();
    void manyConnectionsStatsExact();
    void responderOutlivesServer();
};

void TestHttpServer::keepAliveReusesOneConnection()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    for (int i = 0; i < 20; ++i) {
        c.sendRequest("GET", "/r" + QByteArray::number(i));
        QVERIFY(c.waitForResponses(i + 1));
    }
    QCOMPARE(c.responses().size(), 20);
    QCOMPARE(c.responses().last().body, QByteArray("GET /r19 "));
    QCOMPARE(c.responses().last().header("Content-Length"), QByteArray("9"));
    QVERIFY(c.isConnected());
    const auto &s = f.server.stats();
    QCOMPARE(s.connectionsAccepted, 1u);
    QCOMPARE(s.connectionsOpen, 1u);
    QCOMPARE(s.requestsReceived, 20u);
    QCOMPARE(s.responsesCompleted, 20u);
    QCOMPARE(s.bytesWritten, quint64(c.bytesReceived()));
    QCOMPARE(f.requests.last().indexOnConnection, 19);
    QCOMPARE(f.requests.last().connectionId, 1u);
}

// Two pipelined requests (a body by Content-Length, then a chunked one) split into two writes at every
// possible byte: the parser must produce the same two requests whatever the split.
void TestHttpServer::requestSplitAtEveryByte()
{
    const QByteArray bytes = "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Long: abcdefgh\r\nContent-Length: 5\r\n\r\nhello"
                             "PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
    Fixture f;
    for (qsizetype split = 1; split < bytes.size(); ++split) {
        f.requests.clear();
        RawHttpClient c;
        QVERIFY(c.connectTo(f.server.port()));
        c.sendRaw(bytes.left(split));
        // Let the server read the first part on its own before the rest arrives.
        QTest::qWait(0);
        QCoreApplication::processEvents();
        c.sendRaw(bytes.mid(split));
        QVERIFY2(c.waitForResponses(2), qPrintable(QStringLiteral("split at %1").arg(split)));
        QCOMPARE(f.requests.size(), 2);
        QCOMPARE(f.requests[0].method, QByteArray("POST"));
        QCOMPARE(f.requests[0].path, QStringLiteral("/a"));
        QCOMPARE(f.requests[0].query.queryItemValue(QStringLiteral("x")), QStringLiteral("1"));
        QCOMPARE(f.requests[0].header("x-long"), QByteArray("abcdefgh"));
        QCOMPARE(f.requests[0].body, QByteArray("hello"));
        QCOMPARE(f.requests[1].method, QByteArray("PUT"));
        QCOMPARE(f.requests[1].body, QByteArray("abcde"));
        QCOMPARE(c.responses()[0].body, QByteArray("POST /a?x=1 hello"));
        QCOMPARE(c.responses()[1].body, QByteArray("PUT /b abcde"));
    }
    QCOMPARE(f.server.stats().protocolErrors, 0u);
}

void TestHttpServer::requestByteByByte()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    const QByteArray bytes = "POST /bytes HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
                             "GET /next HTTP/1.1\r\n\r\n";
    for (char b : bytes) {
        c.sendRaw(QByteArray(1, b));
        QCoreApplication::processEvents();
    }
    QVERIFY(c.waitForResponses(2));
    QCOMPARE(c.responses()[0].body, QByteArray("POST /bytes xyz"));
    QCOMPARE(c.responses()[1].body, QByteArray("GET /next "));
    QCOMPARE(f.server.stats().requestsReceived, 2u);
}

void TestHttpServer::pipelinedRequestsAnsweredInOrder()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    // The first requests take longest: answers must still come back in request order.
    QByteArray all;
    const QList<QByteArray> targets{"/delay/60", "/delay/30", "/now", "/delay/10", "/last"};
    for (const QByteArray &t : targets)
        all += RawHttpClient::request("GET", t);
    c.sendRaw(all);
    QVERIFY(c.waitForResponses(5));
    for (int i = 0; i < targets.size(); ++i)
        QCOMPARE(c.responses()[i].body, "GET " + targets[i] + ' ');
    QCOMPARE(f.requests.size(), 5);
    for (int i = 0; i < 5; ++i)
        QCOMPARE(f.requests[i].indexOnConnection, i);
}

void TestHttpServer::chunkedRequestBody()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRaw("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              "A\r\n0123456789\r\n1; name=value\r\n!\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n");
    QVERIFY(c.waitForResponses(1));
    QCOMPARE(f.requests.size(), 1);
    QCOMPARE(f.requests[0].body, QByteArray("0123456789!"));
    QCOMPARE(c.responses()[0].status, 200);
    // The connection stays usable after a chunked body.
    c.sendRequest("GET", "/after");
    QVERIFY(c.waitForResponses(2));
    QCOMPARE(c.responses()[1].body, QByteArray("GET /after "));
}

void TestHttpServer::connectionCloseFromClient()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    // A request pipelined after "Connection: close" is never served.
    c.sendRaw(RawHttpClient::request("GET", "/one", {{"Connection", "close"}}) + RawHttpClient::request("GET", "/two"));
    QVERIFY(c.waitForDisconnected());
    QCOMPARE(c.responses().size(), 1);
    QCOMPARE(c.responses()[0].header("Connection"), QByteArray("close"));
    QCOMPARE(f.requests.size(), 1);
    QCOMPARE(f.server.stats().requestsReceived, 1u);
    QCOMPARE(f.server.stats().responsesCompleted, 1u);
    QTRY_COMPARE(f.server.stats().connectionsOpen, 0u);
}

void TestHttpServer::connectionCloseFromServer()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRequest("GET", "/close");
    QVERIFY(c.waitForDisconnected());
    QCOMPARE(c.responses().size(), 1);
    QCOMPARE(c.responses()[0].header("Connection"), QByteArray("close"));
    QCOMPARE(c.responses()[0].body, QByteArray("GET /close "));
    QVERIFY(!c.parseError());
}

void TestHttpServer::http10ClosesUnlessKeepAlive()
{
    Fixture f;
    {
        RawHttpClient c;
        QVERIFY(c.connectTo(f.server.port()));
        c.sendRaw("GET /old HTTP/1.0\r\n\r\n");
        QVERIFY(c.waitForDisconnected());
        QCOMPARE(c.responses().size(), 1);
        QCOMPARE(c.responses()[0].header("Connection"), QByteArray("close"));
    }
    {
        RawHttpClient c;
        QVERIFY(c.connectTo(f.server.port()));
        c.sendRaw("GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        QVERIFY(c.waitForResponses(1));
        QCOMPARE(c.responses()[0].header("Connection"), QByteArray("keep-alive"));
        c.sendRaw("GET /ka2 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        QVERIFY(c.waitForResponses(2));
        QVERIFY(c.isConnected());
        QCOMPARE(f.requests.last().version, QByteArray("HTTP/1.0"));
    }
    QCOMPARE(f.server.stats().connectionsAccepted, 2u);
}

void TestHttpServer::garbageGets400AndClose_data()
{
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<int>("status");
    QTest::newRow("not http") << QByteArray("hello there\r\n\r\n") << 400;
    QTest::newRow("binary") << QByteArray("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15) << 400;
    QTest::newRow("two spaces") << QByteArray("GET  / HTTP/1.1\r\n\r\n") << 400;
    QTest::newRow("bad version") << QByteArray("GET / HTTX/1.1\r\n\r\n") << 400;
    QTest::newRow("http2 preface") << QByteArray("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") << 505;
    QTest::newRow("no colon") << QByteArray("GET / HTTP/1.1\r\nBad Header\r\n\r\n") << 400;
    QTest::newRow("space before colon") << QByteArray("GET / HTTP/1.1\r\nHost : x\r\n\r\n") << 400;
    QTest::newRow("obs fold") << QByteArray("GET / HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n") << 400;
    QTest::newRow("bad length") << QByteArray("POST / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n") << 400;
    QTest::newRow("negative length") << QByteArray("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n") << 400;
    QTest::newRow("two lengths") << QByteArray("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                                 << 400;
    QTest::newRow("length and chunked")
        << QByteArray("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") << 400;
    QTest::newRow("bad chunk size") << QByteArray("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                                    << 400;
    QTest::newRow("chunk without crlf")
        << QByteArray("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY") << 400;
    QTest::newRow("gzip coding") << QByteArray("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") << 501;
    QTest::newRow("relative target") << QByteArray("GET index.html HTTP/1.1\r\n\r\n") << 400;
    QTest::newRow("control char") << QByteArray("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n") << 400;
}

void TestHttpServer::garbageGets400AndClose()
{
    QFETCH(QByteArray, bytes);
    QFETCH(int, status);
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRaw(bytes);
    QVERIFY(c.waitForDisconnected());
    QCOMPARE(c.responses().size(), 1);
    QCOMPARE(c.responses()[0].status, status);
    QCOMPARE(c.responses()[0].header("Connection"), QByteArray("close"));
    QCOMPARE(f.requests.size(), 0); // the handler never sees it
    const auto &s = f.server.stats();
    QCOMPARE(s.requestsReceived, 1u);
    QCOMPARE(s.responsesCompleted, 1u);
    QCOMPARE(s.protocolErrors, 1u);
    QCOMPARE(s.bytesWritten, quint64(c.bytesReceived()));
}

void TestHttpServer::goodRequestThenGarbage()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    // The delayed good answer must still come first, then the 400.
    c.sendRaw(RawHttpClient::request("GET", "/delay/30") + "garbage garbage\r\n\r\n");
    QVERIFY(c.waitForDisconnected());
    QCOMPARE(c.responses().size(), 2);
    QCOMPARE(c.responses()[0].status, 200);
    QCOMPARE(c.responses()[1].status, 400);
}

void TestHttpServer::headLimitGives431()
{
    Fixture f;
    f.server.setMaxRequestSize(1024, 100);
    {
        // Complete but too big a head.
        RawHttpClient c;
        QVERIFY(c.connectTo(f.server.port()));
        c.sendRequest("GET", "/", {{"X-Big", QByteArray(2000, 'a')}});
        QVERIFY(c.waitForDisconnected());
        QCOMPARE(c.responses().size(), 1);
        QCOMPARE(c.responses()[0].status, 431);
    }
    {
        // A head that never ends: refused as soon as it passes the limit, not when it ends.
        RawHttpClient c;
        QVERIFY(c.connectTo(f.server.port()));
        c.sendRaw("GET / HTTP/1.1\r\nX-Endless: " + QByteArray(1500, 'b'));
        QVERIFY(c.waitForDisconnected());
        QCOMPARE(c.responses().size(), 1);
        QCOMPARE(c.responses()[0].status, 431);
    }
    {
        // Just under the limit is fine.
        RawHttpClient c;
        QVERIFY(c.connectTo(f.server.port()));
        c.sendRequest("GET", "/", {{"X-Ok", QByteArray(900, 'c')}});
        QVERIFY(c.waitForResponses(1));
        QCOMPARE(c.responses()[0].status, 200);
    }
    QCOMPARE(f.requests.size(), 1);
}

void TestHttpServer::bodyLimitGives413()
{
    Fixture f;
    f.server.setMaxRequestSize(1024, 100);
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    // Refused from the head alone: the client may still be sending the body, and must still see the 413.
    c.sendRaw("POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + QByteArray(50000, 'z'));
    QVERIFY(c.waitForDisconnected());
    QCOMPARE(c.responses().size(), 1);
    QCOMPARE(c.responses()[0].status, 413);

    RawHttpClient ok;
    QVERIFY(ok.connectTo(f.server.port()));
    ok.sendRequest("POST", "/", {}, QByteArray(100, 'y'));
    QVERIFY(ok.waitForResponses(1));
    QCOMPARE(ok.responses()[0].status, 200);
}

void TestHttpServer::chunkedBodyLimitGives413()
{
    Fixture f;
    f.server.setMaxRequestSize(1024, 100);
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRaw("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + QByteArray(64, 'a') + "\r\n40\r\n");
    QVERIFY(c.waitForDisconnected());
    QCOMPARE(c.responses().size(), 1);
    QCOMPARE(c.responses()[0].status, 413);
    QCOMPARE(f.requests.size(), 0);
}

void TestHttpServer::idleConnectionsAreClosed()
{
    Fixture f;
    f.server.setIdleTimeout(150);
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRequest("GET", "/x");
    QVERIFY(c.waitForResponses(1));
    QElapsedTimer t;
    t.start();
    QVERIFY(c.waitForDisconnected(3000));
    QVERIFY2(t.elapsed() >= 100, qPrintable(QString::number(t.elapsed())));
    QVERIFY2(t.elapsed() < 1500, qPrintable(QString::number(t.elapsed())));
    QTRY_COMPARE(f.server.stats().connectionsOpen, 0u);

    // A half-sent request is idle too (a slow-loris client does not hold a connection forever).
    RawHttpClient slow;
    QVERIFY(slow.connectTo(f.server.port()));
    slow.sendRaw("GET / HTTP/1.1\r\nHost:");
    QVERIFY(slow.waitForDisconnected(3000));
    QCOMPARE(slow.responses().size(), 0);
}

void TestHttpServer::busyConnectionIsNotIdle()
{
    Fixture f;
    f.server.setIdleTimeout(80);
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRequest("GET", "/delay/400");
    QVERIFY(c.waitForResponses(1, 3000));
    QCOMPARE(c.responses()[0].status, 200);
}

void TestHttpServer::headResponseHasLengthButNoBody()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRequest("HEAD", "/h");
    c.sendRequest("GET", "/g");
    QVERIFY(c.waitForResponses(2));
    QCOMPARE(c.responses()[0].header("Content-Length"), QByteArray("8")); // "HEAD /h "
    QCOMPARE(c.responses()[0].body, QByteArray());
    QCOMPARE(c.responses()[1].body, QByteArray("GET /g "));
}

void TestHttpServer::bodilessStatuses()
{
    Fixture f;
    f.custom = [](const Http::Request &r, Http::Responder responder) {
        Http::Response response;
        response.status = r.path.mid(1).toInt();
        response.body = "ignored";
        responder.send(response);
    };
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRequest("GET", "/204");
    c.sendRequest("GET", "/304");
    c.sendRequest("GET", "/200");
    QVERIFY(c.waitForResponses(3));
    QCOMPARE(c.responses()[0].status, 204);
    QCOMPARE(c.responses()[0].header("Content-Length"), QByteArray());
    QCOMPARE(c.responses()[1].status, 304);
    QCOMPARE(c.responses()[2].body, QByteArray("ignored"));
    QVERIFY(!c.parseError());
}

void TestHttpServer::staleResponderIsIgnored()
{
    Fixture f;
    Http::Responder first;
    f.custom = [&](const Http::Request &r, Http::Responder responder) {
        if (r.path == QLatin1String("/first")) {
            first = responder;
            Http::Response one;
            one.body = "first";
            responder.send(one);
            return;
        }
        // The second request is answered late; a late duplicate answer to the first must not take its place.
        Http::Response dup;
        dup.body = "duplicate";
        first.send(dup);
        QTimer::singleShot(20, [responder]() mutable {
            Http::Response two;
            two.body = "second";
            responder.send(two);
        });
    };
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRaw(RawHttpClient::request("GET", "/first") + RawHttpClient::request("GET", "/second"));
    QVERIFY(c.waitForResponses(2));
    QCOMPARE(c.responses()[0].body, QByteArray("first"));
    QCOMPARE(c.responses()[1].body, QByteArray("second"));
    QCOMPARE(f.server.stats().responsesCompleted, 2u);
}

void TestHttpServer::writeRawAndAbortResets()
{
    Fixture f;
    f.custom = [](const Http::Request &, Http::Responder responder) {
        responder.writeRaw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        responder.writeRaw(QByteArray(10, 'p'));
        responder.abort();
    };
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRequest("GET", "/");
    QVERIFY(c.waitForDisconnected());
    QVERIFY(c.received().endsWith(QByteArray(10, 'p')));
    QCOMPARE(c.responses().size(), 0);
    QCOMPARE(c.error(), QAbstractSocket::RemoteHostClosedError); // Qt reports ECONNRESET on read this way
    QCOMPARE(f.server.stats().responsesCompleted, 0u);
    QTRY_COMPARE(f.server.stats().connectionsOpen, 0u);
}

void TestHttpServer::expectContinue()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRaw("POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    QVERIFY(QTest::qWaitFor([&] { return c.received().startsWith("HTTP/1.1 100 Continue\r\n\r\n"); }, 3000));
    c.sendRaw("body");
    QVERIFY(c.waitForResponses(1));
    QCOMPARE(c.responses()[0].body, QByteArray("POST /e body"));
}

void TestHttpServer::queryAndPathDecoding()
{
    Fixture f;
    RawHttpClient c;
    QVERIFY(c.connectTo(f.server.port()));
    c.sendRaw("GET /a%20b/c?q=1%202&empty=&x HTTP/1.1\r\n\r\n"
              "GET http://example.test:8080/abs?z=9 HTTP/1.1\r\n\r\n"
              "\r\nGET /after-blank-line HTTP/1.1\r\nHost:   spaced   \r\n\r\n");
    QVERIFY(c.waitForResponses(3));
    QCOMPARE(f.requests[0].path, QStringLiteral("/a b/c"));
    QCOMPARE(f.requests[0].query.queryItemValue(QStringLiteral("q")), QStringLiteral("1 2"));
    QVERIFY(f.requests[0].query.hasQueryItem(QStringLiteral("x")));
    QCOMPARE(f.requests[0].target, QByteArray("/a%20b/c?q=1%202&empty=&x"));
    QCOMPARE(f.requests[1].path, QStringLiteral("/abs"));
    QCOMPARE(f.requests[1].query.queryItemValue(QStringLiteral("z")), QStringLiteral("9"));
    QCOMPARE(f.requests[2].path, QStringLiteral("/after-blank-line"));
    QCOMPARE(f.requests[2].header("HOST"), QByteArray("spaced"));
    QCOMPARE(f.requests[2].peer, QHostAddress(QHostAddress::LocalHost));
}

void TestHttpServer::manyConnectionsStatsExact()
{
    Fixture f;
    constexpr int Clients = 40;
    constexpr int PerClient = 25;
    std::vector<std::unique_ptr<RawHttpClient>> clients;
    for (int i = 0; i < Clients; ++i) {
        clients.push_back(std::make_unique<RawHttpClient>());
        QVERIFY(clients.back()->connectTo(f.server.port()));
    }
    // Half pipeline everything at once, half go one by one (and some of those close at the end).
    for (int i = 0; i < Clients; i += 2) {
        QByteArray all;
        for (int r = 0; r < PerClient; ++r)
            all += RawHttpClient::request("POST", "/p", {}, QByteArray(r, 'b'));
        clients[std::size_t(i)]->sendRaw(all);
    }
    for (int r = 0; r < PerClient; ++r) {
        for (int i = 1; i < Clients; i += 2) {
            const bool last = r == PerClient - 1 && i % 4 == 1;
            clients[std::size_t(i)]->sendRequest("GET", last ? "/close" : "/g");
        }
        for (int i = 1; i < Clients; i += 2)
            QVERIFY(clients[std::size_t(i)]->waitForResponses(r + 1));
    }
    qint64 received = 0;
    for (auto &c : clients) {
        QVERIFY(c->waitForResponses(PerClient));
        QCOMPARE(c->responses().size(), PerClient);
        QVERIFY(!c->parseError());
        received += c->bytesReceived();
    }
    const auto &s = f.server.stats();
    QCOMPARE(s.connectionsAccepted, quint64(Clients));
    QCOMPARE(s.requestsReceived, quint64(Clients * PerClient));
    QCOMPARE(s.responsesCompleted, quint64(Clients * PerClient));
    QCOMPARE(s.bytesWritten, quint64(received));
    QCOMPARE(s.protocolErrors, 0u);
    QTRY_COMPARE(s.connectionsOpen, quint64(Clients - Clients / 4));
}

void TestHttpServer::responderOutlivesServer()
{
    Http::Responder kept;
    auto server = std::make_unique<Http::Server>();
    server->setHandler([&](const Http::Request &, Http::Responder r) { kept = r; });
    QVERIFY(server->listen());
    RawHttpClient c;
    QVERIFY(c.connectTo(server->port()));
    c.sendRequest("GET", "/");
    QVERIFY(QTest::qWaitFor([&] { return kept.isConnected(); }, 3000));
    server.reset();
    QVERIFY(!kept.isConnected());
    kept.send(Http::Response{}); // harmless no-op
    kept.abort();
    QVERIFY(c.waitForDisconnected());
}

QTEST_GUILESS_MAIN(TestHttpServer)
#include "tst_httpserver.moc"

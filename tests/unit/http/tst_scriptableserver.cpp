// The scriptable test server: each behaviour, and its counters, as the integration tests rely on them.
#include "scriptableserver.h"

#include "rawhttpclient.h"

#include <QElapsedTimer>
#include <QTest>

#include <nlohmann/json.hpp>

using namespace Userflux;
using Userflux::Test::RawHttpClient;
using Userflux::Test::ScriptableServer;
using Userflux::Test::waitUntil;
using Json = nlohmann::json;

class TestScriptableServer : public QObject {
    Q_OBJECT
private slots:
    void init();
    void cleanup();
    void okStatusAndDelay();
    void sleepSequence();
    void closeDelimited();
    void chunkedWithLateLastChunk();
    void closeEvery();
    void headLengthNotModifiedNoContent();
    void freezeHoldsResponses();
    void resetAfter();
    void redirectChain();
    void garbage();
    void echoHeadersCookie();
    void statsAndReset();

private:
    std::unique_ptr<ScriptableServer> m_server;
    std::unique_ptr<RawHttpClient> client()
    {
        auto c = std::make_unique<RawHttpClient>();
        if (!c->connectTo(m_server->port()))
            return nullptr;
        return c;
    }
};

void TestScriptableServer::init()
{
    m_server = std::make_unique<ScriptableServer>();
    QVERIFY(m_server->listen());
}

void TestScriptableServer::cleanup()
{
    m_server.reset();
}

void TestScriptableServer::okStatusAndDelay()
{
    auto c = client();
    QVERIFY(c);
    c->sendRequest("GET", "/ok");
    c->sendRequest("GET", "/ok?bytes=1000");
    c->sendRequest("GET", "/status/503");
    c->sendRequest("GET", "/status/418?bytes=3");
    c->sendRequest("GET", "/nope");
    QVERIFY(c->waitForResponses(5));
    QCOMPARE(c->responses()[0].body, QByteArray("ok"));
    QCOMPARE(c->responses()[1].body, QByteArray(1000, 'x'));
    QCOMPARE(c->responses()[2].status, 503);
    QCOMPARE(c->responses()[3].status, 418);
    QCOMPARE(c->responses()[3].body, QByteArray("xxx"));
    QCOMPARE(c->responses()[4].status, 404);

    QElapsedTimer t;
    t.start();
    c->sendRequest("GET", "/delay?ms=80");
    QVERIFY(c->waitForResponses(6));
    QVERIFY(t.elapsed() >= 75);
    t.restart();
    c->sendRequest("GET", "/status/500?delay_ms=50");
    QVERIFY(c->waitForResponses(7));
    QVERIFY(t.elapsed() >= 45);
    QCOMPARE(c->responses()[6].status, 500);
}

void TestScriptableServer::sleepSequence()
{
    auto c = client();
    QVERIFY(c);
    for (int i = 0; i < 4; ++i)
        c->sendRequest("GET", "/sleep-seq?start_ms=5&step_ms=15");
    QVERIFY(c->waitForResponses(4));
    for (int i = 0; i < 4; ++i)
        QCOMPARE(c->responses()[i].header("X-Sleep-Ms"), QByteArray::number(5 + 15 * i));
    m_server->reset();
    c->sendRequest("GET", "/sleep-seq?start_ms=1&step_ms=100");
    QVERIFY(c->waitForResponses(5));
    QCOMPARE(c->responses()[4].header("X-Sleep-Ms"), QByteArray("1"));
}

void TestScriptableServer::closeDelimited()
{
    auto c = client();
    QVERIFY(c);
    c->sendRequest("GET", "/close-delimited?bytes=1234");
    QVERIFY(c->waitForDisconnected());
    QCOMPARE(c->responses().size(), 1);
    QVERIFY(c->responses()[0].closeDelimited);
    QCOMPARE(c->responses()[0].header("Content-Length"), QByteArray());
    QCOMPARE(c->responses()[0].body.size(), 1234);
    QCOMPARE(m_server->stats().bodyBytesWritten, 1234u);
    QCOMPARE(m_server->stats().responsesCompleted, 1u);
}

void TestScriptableServer::chunkedWithLateLastChunk()
{
    auto c = client();
    QVERIFY(c);
    QElapsedTimer t;
    t.start();
    c->sendRequest("GET", "/chunked?chunks=3&chunk_bytes=7&last_delay_ms=100");
    // The first two chunks arrive at once, the response ends only after the delay.
    QVERIFY(waitUntil([&] { return c->received().count("xxxxxxx\r\n") == 2; }));
    QVERIFY(t.elapsed() < 90);
    QCOMPARE(c->responses().size(), 0);
    QVERIFY(c->waitForResponses(1));
    QVERIFY(t.elapsed() >= 95);
    QVERIFY(c->responses()[0].chunked);
    QCOMPARE(c->responses()[0].body, QByteArray(21, 'x'));
    QCOMPARE(m_server->stats().bodyBytesWritten, 21u);
    QVERIFY(c->isConnected());
}

void TestScriptableServer::closeEvery()
{
    int connections = 0;
    int responses = 0;
    while (responses < 7) {
        auto c = client();
        QVERIFY(c);
        ++connections;
        while (!c->disconnected() && responses < 7) {
            c->sendRequest("GET", "/close-every?n=3");
            QVERIFY(c->waitForResponses(int(c->responses().size()) + 1));
            ++responses;
            if (c->responses().last().header("Connection") == "close")
                QVERIFY(c->waitForDisconnected());
        }
    }
    QCOMPARE(connections, 3); // 3 + 3 + 1
    QCOMPARE(m_server->stats().connectionsAccepted, 3u);
}

void TestScriptableServer::headLengthNotModifiedNoContent()
{
    auto c = client();
    QVERIFY(c);
    c->sendRequest("HEAD", "/head-length");
    c->sendRequest("GET", "/not-modified");
    c->sendRequest("GET", "/no-content");
    c->sendRequest("GET", "/head-length?bytes=10");
    QVERIFY(c->waitForResponses(4));
    QCOMPARE(c->responses()[0].header("Content-Length"), QByteArray("1048576"));
    QCOMPARE(c->responses()[0].body, QByteArray());
    QCOMPARE(c->responses()[1].status, 304);
    QCOMPARE(c->responses()[1].header("Content-Length"), QByteArray("1000"));
    QCOMPARE(c->responses()[2].status, 204);
    QCOMPARE(c->responses()[2].header("Content-Length"), QByteArray());
    QCOMPARE(c->responses()[3].body.size(), 10);
    QVERIFY(!c->parseError());
    QCOMPARE(m_server->stats().bodyBytesWritten, 10u);
}

void TestScriptableServer::freezeHoldsResponses()
{
    auto c = client();
    QVERIFY(c);
    QElapsedTimer t;
    t.start();
    c->sendRequest("GET", "/freeze?at_ms=50&for_ms=150");
    QVERIFY(c->waitForResponses(1));
    QVERIFY(t.elapsed() < 50);
    QTest::qWait(60); // inside the window now
    c->sendRequest("GET", "/ok");
    QVERIFY(c->waitForResponses(2));
    QVERIFY2(t.elapsed() >= 195, qPrintable(QString::number(t.elapsed())));
    c->sendRequest("GET", "/ok");
    QVERIFY(c->waitForResponses(3, 100)); // after the window: at once
}

void TestScriptableServer::resetAfter()
{
    auto first = client();
    QVERIFY(first);
    first->sendRequest("GET", "/reset-after?bytes=500&every=2");
    QVERIFY(first->waitForResponses(1));
    QCOMPARE(first->responses()[0].body.size(), 500);
    first->sendRequest("GET", "/reset-after?bytes=500&every=2");
    QVERIFY(first->waitForDisconnected());
    QCOMPARE(first->responses().size(), 1); // the second one never completes
    QVERIFY(first->received().contains("Content-Length: 1001"));
    QVERIFY(first->received().endsWith(QByteArray(500, 'x')));
    const auto s = m_server->stats();
    QCOMPARE(s.responsesCompleted, 1u);
    QCOMPARE(s.responsesBroken, 1u);
    QCOMPARE(s.bodyBytesWritten, 1000u);

    // cut=M: a large body advertised whole, cut after M bytes.
    m_server->reset();
    auto second = client();
    QVERIFY(second);
    second->sendRequest("GET", "/reset-after?bytes=5000&every=2&cut=1000");
    QVERIFY(second->waitForResponses(1));
    QCOMPARE(second->responses()[0].body.size(), 5000);
    second->sendRequest("GET", "/reset-after?bytes=5000&every=2&cut=1000");
    QVERIFY(second->waitForDisconnected());
    QCOMPARE(second->responses().size(), 1);
    QVERIFY(second->received().contains("Content-Length: 5000"));
    QCOMPARE(second->bytesReceived() - second->received().lastIndexOf("\r\n\r\n") - 4, 1000);
    const auto cutStats = m_server->stats();
    QCOMPARE(cutStats.responsesCompleted, 1u);
    QCOMPARE(cutStats.responsesBroken, 1u);
    QCOMPARE(cutStats.bodyBytesWritten, 6000u);
}

void TestScriptableServer::redirectChain()
{
    auto c = client();
    QVERIFY(c);
    QByteArray target = "/redirect?n=3";
    for (int hop = 0; hop < 3; ++hop) {
        c->sendRequest("GET", target);
        QVERIFY(c->waitForResponses(hop + 1));
        QCOMPARE(c->responses().last().status, 302);
        target = c->responses().last().header("Location");
    }
    QCOMPARE(target, QByteArray("/ok"));
}

void TestScriptableServer::garbage()
{
    auto c = client();
    QVERIFY(c);
    c->sendRequest("GET", "/garbage");
    QVERIFY(c->waitForDisconnected());
    QVERIFY(c->parseError());
    QVERIFY(c->received().startsWith("this is not HTTP"));
    QCOMPARE(m_server->stats().responsesBroken, 1u);
}

void TestScriptableServer::echoHeadersCookie()
{
    auto c = client();
    QVERIFY(c);
    c->sendRequest("POST", "/echo", {{"Content-Type", "application/json"}}, R"({"a":1})");
    c->sendRequest("GET", "/headers", {{"X-Test", "yes"}});
    c->sendRequest("GET", "/set-cookie?name=sid&value=42");
    QVERIFY(c->waitForResponses(3));
    QCOMPARE(c->responses()[0].body, QByteArray(R"({"a":1})"));
    QCOMPARE(c->responses()[0].header("Content-Type"), QByteArray("application/json"));
    const Json h = Json::parse(c->responses()[1].body.toStdString());
    QCOMPARE(h["method"].get<std::string>(), std::string("GET"));
    QCOMPARE(h["index_on_connection"].get<int>(), 1);
    bool found = false;
    for (const auto &pair : h["headers"])
        found = found || (pair[0] == "X-Test" && pair[1] == "yes");
    QVERIFY(found);
    QCOMPARE(c->responses()[2].header("Set-Cookie"), QByteArray("sid=42; Path=/"));
}

void TestScriptableServer::statsAndReset()
{
    auto c = client();
    QVERIFY(c);
    for (int i = 0; i < 10; ++i)
        c->sendRequest("GET", "/ok?bytes=10");
    QVERIFY(c->waitForResponses(10));
    auto other = client();
    QVERIFY(other);
    other->sendRequest("GET", "/__stats");
    QVERIFY(other->waitForResponses(1));
    Json s = Json::parse(other->responses()[0].body.toStdString());
    QCOMPARE(s["connections_accepted"].get<int>(), 1); // the stats connection is not counted
    QCOMPARE(s["connections_with_requests"].get<int>(), 1);
    QCOMPARE(s["requests_received"].get<int>(), 10);
    QCOMPARE(s["responses_completed"].get<int>(), 10);
    QCOMPARE(s["body_bytes_written"].get<int>(), 100);
    QCOMPARE(s["requests_by_path"]["/ok"].get<int>(), 10);
    QCOMPARE(s["core"]["requests_received"].get<int>(), 11);

    other->sendRequest("POST", "/__reset");
    other->sendRequest("GET", "/__stats");
    QVERIFY(other->waitForResponses(3));
    s = Json::parse(other->responses()[2].body.toStdString());
    QCOMPARE(s["connections_accepted"].get<int>(), 0);
    QCOMPARE(s["requests_received"].get<int>(), 0);
    QCOMPARE(s["body_bytes_written"].get<int>(), 0);

    // Concurrency is visible: 5 connections each with a slow request in flight at once.
    std::vector<std::unique_ptr<RawHttpClient>> many;
    for (int i = 0; i < 5; ++i) {
        many.push_back(client());
        many.back()->sendRequest("GET", "/delay?ms=50");
    }
    for (auto &m : many)
        QVERIFY(m->waitForResponses(1));
    const auto st = m_server->stats();
    QCOMPARE(st.maxInFlight, 5u);
    QCOMPARE(st.inFlight, 0u);
    QCOMPARE(st.connectionsAccepted, 5u);
}

QTEST_GUILESS_MAIN(TestScriptableServer)
#include "tst_scriptableserver.moc"

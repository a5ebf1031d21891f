/* tests/install/prog.c — a program of a library user, built by
 * tests/test_install.sh against the *installed* headers and library only
 * (pkg-config seqd), never the tree. Given a running cluster it uses each
 * part of the API once and prints what it got, one line each:
 *
 *   fetch FIRST          client_fetch of 3 IDs
 *   stream ID ID ID ...  5 IDs of a buffered stream
 *   async FIRST          aclient_fetch of 2 IDs on a libevent loop
 *
 * usage: prog SERVERS; exit 0 when every call succeeded. */
#include <seqd/client.h>
#include <seqd/client_async.h>
#include <seqd/stream.h>

#include <event2/event.h>
#include <stdio.h>

static int async_rc = -1;

/* The aclient keeps its connections open: the loop ends here. */
static void got(void *arg, int rc, uint64_t first, const char *err)
{
    event_base_loopexit(arg, NULL);
    async_rc = rc;
    if (rc == CLIENT_OK)
        printf("async %llu\n", (unsigned long long)first);
    else
        fprintf(stderr, "prog: aclient_fetch: %s\n", err);
}

static int use_async(const char *servers)
{
    char err[512];
    struct event_base *base = event_base_new();
    aclient *ac = base ? aclient_new(base, servers, err, sizeof err) : NULL;
    if (!ac || aclient_fetch(ac, "install.async", 2, 5000, got, base, err, sizeof err) != CLIENT_OK) {
        fprintf(stderr, "prog: aclient: %s\n", ac ? err : "no event base or client");
        return 1;
    }
    event_base_dispatch(base);
    aclient_free(ac);
    event_base_free(base);
    return async_rc == CLIENT_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: prog SERVERS\n");
        return 2;
    }
    char err[512];
    client *c = client_new(argv[1], err, sizeof err);
    uint64_t first;
    if (!c || client_fetch(c, "install.direct", 3, 5000, &first, err, sizeof err) != CLIENT_OK) {
        fprintf(stderr, "prog: client_fetch: %s\n", err);
        return 1;
    }
    printf("fetch %llu\n", (unsigned long long)first);
    client_free(c);

    stream *s = stream_new_client(argv[1], "install.stream", 4, 5000, err, sizeof err);
    if (!s) {
        fprintf(stderr, "prog: stream_new_client: %s\n", err);
        return 1;
    }
    printf("stream");
    for (int i = 0; i < 5; i++) {
        uint64_t id;
        if (stream_next(s, &id, 5000, err, sizeof err) != CLIENT_OK) {
            fprintf(stderr, "prog: stream_next: %s\n", err);
            return 1;
        }
        printf(" %llu", (unsigned long long)id);
    }
    printf("\n");
    stream_free(s);
    return use_async(argv[1]);
}

/* A child forked while its parent has a channel and a call open (argv[1] = a tonic echo
 * server): the parent's handles are the parent's. In the child they fail with
 * RILL_ERR_WRONG_STATE, and freeing them leaves them be (their runtime's threads are not
 * in the child, and locks those threads held at the fork stay held there); the child's own
 * channel works. The parent's call goes on. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "echo_calls.h"

#define PING "/echo.TestService/PingPong"
#define ECHO "/echo.TestService/Echo"
#define T 10000

static rill_call open_call(rill_channel ch, const char *method, uint32_t shape) {
    rill_call_options o;
    OK(rill_call_options_init(&o));
    rill_call c;
    OK(rill_call_open(ch, method, shape, &o, &c));
    return c;
}

static void in_child(const char *target, rill_channel parents_ch, rill_call parents_call) {
    const uint8_t *d;
    size_t l;
    uint8_t buf[64];
    size_t n = echo_encode(buf, "c", 1, 0);
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_send(parents_call, buf, n, T));
    CHECK(strstr(rill_last_error_message(), "forked") != NULL);
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_recv(parents_call, &d, &l, 100));
    rill_call c;
    rill_call_options o;
    OK(rill_call_options_init(&o));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_open(parents_ch, PING, RILL_UNARY, &o, &c));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_free(parents_call));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_channel_free(parents_ch));

    rill_channel mine;
    OK(rill_channel_new(target, NULL, &mine));
    c = open_call(mine, PING, RILL_UNARY);
    send_req(c, "child", 0);
    OK(rill_call_close_send(c));
    recv_expect(c, "child");
    uint32_t code = 99;
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_OK);
    OK(rill_call_free(c));
    OK(rill_channel_free(mine));
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: fork_test http://127.0.0.1:PORT\n"); return 2; }
    rill_channel ch;
    OK(rill_channel_new(argv[1], NULL, &ch));
    rill_call c = open_call(ch, ECHO, RILL_BIDI);
    send_req(c, "open", 0);
    recv_expect(c, "open");

    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(60); /* a child stuck in a lock ends instead of hanging the test */
        in_child(argv[1], ch, c);
        printf("fork_test: child passed\n");
        fflush(stdout);
        /* Killed, not exited: under valgrind an exit would check the child for leaks, and
         * what its parent's threads held (they are not in the child) counts as lost. */
        kill(getpid(), SIGKILL);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    send_req(c, "still", 0);
    recv_expect(c, "still");
    OK(rill_call_close_send(c));
    uint32_t code = 99;
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_OK);
    OK(rill_call_free(c));
    OK(rill_channel_free(ch));
    printf("fork_test: all passed\n");
    return 0;
}

/*
 * hwloop-simavr: run the hwloop firmware under simavr with UART0 on a pty.
 *
 *   hwloop-simavr hwloop.elf [mcu] [freq]
 *
 * Prints "PTY /dev/pts/N" on stdout once the pty exists, then runs until
 * killed. Why not simavr's uart_pty part: it also writes a fixed symlink
 * (/tmp/simavr-uart0) that parallel runs would fight over, and prints
 * chatter on stdout. Bytes from the pty enter the AVR at the line rate of
 * 115200 baud in simulated time; the runner keeps the slave end open so a
 * client may close and re-open the port.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <simavr/avr_uart.h>
#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>
#include <simavr/sim_irq.h>
#include <simavr/sim_time.h>

#define RING 8192

static int master_fd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t ring[RING];
static unsigned r_head, r_tail; /* guarded by lock */
static volatile int paused;
static avr_irq_t *uart_in;
static avr_cycle_count_t cycles_per_byte, idle_cycles;

static void *reader(void *arg) {
    (void)arg;
    uint8_t buf[512];
    for (;;) {
        ssize_t k = read(master_fd, buf, sizeof buf);
        if (k <= 0) {
            if (k < 0 && errno == EINTR) continue;
            usleep(10000); /* EIO while no slave is open: wait for one */
            continue;
        }
        pthread_mutex_lock(&lock);
        for (ssize_t i = 0; i < k; i++) {
            if ((r_head + 1) % RING == r_tail) break; /* overrun: drop like a UART */
            ring[r_head] = buf[i];
            r_head = (r_head + 1) % RING;
        }
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

/* one byte per byte-time of the line, in simulated time */
static avr_cycle_count_t feed(avr_t *avr, avr_cycle_count_t when, void *param) {
    (void)avr; (void)param;
    if (paused) return when + cycles_per_byte;
    int have = 0;
    uint8_t b = 0;
    pthread_mutex_lock(&lock);
    if (r_tail != r_head) {
        b = ring[r_tail];
        r_tail = (r_tail + 1) % RING;
        have = 1;
    }
    pthread_mutex_unlock(&lock);
    if (have) avr_raise_irq(uart_in, b);
    return when + (have ? cycles_per_byte : idle_cycles);
}

static void on_output(struct avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq; (void)param;
    uint8_t b = (uint8_t)value;
    for (int tries = 0; tries < 1000; tries++) {
        ssize_t k = write(master_fd, &b, 1);
        if (k == 1) return;
        if (k < 0 && errno != EAGAIN && errno != EINTR) return;
        usleep(100);
    }
}

static void on_xon(struct avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq; (void)param;
    if (value) paused = 0;
}

static void on_xoff(struct avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq; (void)param;
    paused = value != 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s firmware.elf [mcu] [freq_hz]\n", argv[0]);
        return 2;
    }
    const char *mcu = argc > 2 ? argv[2] : "atmega328p";
    uint32_t freq = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 0) : 16000000u;

    elf_firmware_t fw;
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(argv[1], &fw) != 0) {
        fprintf(stderr, "hwloop-simavr: cannot read %s\n", argv[1]);
        return 1;
    }
    avr_t *avr = avr_make_mcu_by_name(mcu);
    if (!avr) {
        fprintf(stderr, "hwloop-simavr: unknown mcu %s\n", mcu);
        return 1;
    }
    avr_init(avr);
    avr->frequency = freq;
    avr_load_firmware(avr, &fw);
    avr->frequency = freq;

    uint32_t flags = 0;
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
    flags &= ~AVR_UART_FLAG_STDIO;
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);

    int slave_fd;
    char name[256];
    if (openpty(&master_fd, &slave_fd, name, NULL, NULL) != 0) {
        perror("hwloop-simavr: openpty");
        return 1;
    }
    struct termios t;
    tcgetattr(slave_fd, &t);
    cfmakeraw(&t);
    tcsetattr(slave_fd, TCSANOW, &t);

    uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_output, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, NULL);

    /* simavr's UART counts 11 bits a byte: feed no faster than it drains */
    cycles_per_byte = (avr_cycle_count_t)freq * 11 / 115200;
    idle_cycles = (avr_cycle_count_t)freq / 2000; /* 0.5 ms poll while the line is idle */
    avr_cycle_timer_register(avr, idle_cycles, feed, NULL);

    pthread_t th;
    pthread_create(&th, NULL, reader, NULL);

    printf("PTY %s\n", name);
    fflush(stdout);

    for (;;) {
        int state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) {
            fprintf(stderr, "hwloop-simavr: simulation ended (state %d)\n", state);
            break;
        }
    }
    return 1;
}

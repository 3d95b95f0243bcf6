/*
 * hwloop wire protocol v1 device for an ATmega328P at 16 MHz (Arduino Uno).
 *
 * The device function is a Rapp-style saturation, p = 2:
 *     y = x / (1 + x^4)^(1/4)        safe input range [-1, 1]
 * plus measurement noise like an ADC's (Gaussian, sigma NOISE_SIGMA of full
 * scale, from a xorshift32 PRNG and the sum of 12 uniforms).
 *
 * Protocol: see PROTOCOL.md. Frames are COBS-decoded on the fly with a
 * streaming CRC, so a frame longer than the receive buffer is still checked
 * and answered (ERROR 4 or 5) instead of being mistaken for garbage.
 * Exactly-once: the last WINDOW answers to QUERY and RESET are stored with
 * the request's seq and payload CRC; a repeated request replays its answer
 * without applying the input again. INFO is always answered afresh and never
 * stored. Host sessions (amendment 1): an INFO whose u32 session differs from
 * the last INFO's (an empty INFO counts as different every time) forgets all
 * stored answers, so one host process never gets another's answers.
 * RAM is 2 KiB: MAX_BATCH 16, WINDOW 2.
 *
 * On-board inverse (optional): built with HWLOOP_INVERSE naming the header of
 * an `hwloop export --format c` of a memoryless 1 -> 1 inverse M (the
 * Makefile's INVERSE=path/to/hwl_inv.h), the firmware applies M itself: a
 * QUERY's inputs are targets t, the sensor is driven with x = M(t) computed
 * in the export's fixed point (integer arithmetic, tables in flash), and
 * the answer is y = F(M(t)). Only the firmware string changes
 * ("1.0+inv:<hash8>", the first 8 hex digits of the SHA-256 of hwl_inv.c);
 * the wire protocol and the declared range are those of the plain build.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include <avr/sleep.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <util/crc16.h>

#ifndef BAUD
#define BAUD 115200UL
#endif
#ifndef NOISE_SIGMA
#define NOISE_SIGMA 1e-3
#endif
#ifndef NOISE_SEED
#define NOISE_SEED 0x2545F491UL
#endif
#ifndef FW_VERSION
#define FW_VERSION "1.0"
#endif

#ifdef HWLOOP_INVERSE
#include HWLOOP_INVERSE
#if HWL_INV_STATEFUL || HWL_INV_IN_DIM != 1 || HWL_INV_OUT_DIM != 1
#error "the on-board inverse must be a memoryless 1 -> 1 export (hwloop export --format c of an mlp run)"
#endif
#define FW_STRING FW_VERSION "+inv:" HWL_INV_HASH8
#else
#define FW_STRING FW_VERSION
#endif

#define MAX_BATCH 16
#define WINDOW 2
#define IN_DIM 1
#define OUT_DIM 1
#define DEV_NAME "rapp-avr"
#define X_LOW (-1.0f)
#define X_HIGH (1.0f)

#define MAX_BLOCK 1024
#define RX_KEEP (4 + 2 + 4 * MAX_BATCH * IN_DIM + 2) /* largest frame we act on */
#define TX_MAX (4 + 2 + 4 * MAX_BATCH * OUT_DIM)       /* largest response payload */

enum { T_INFO = 0x01, T_QUERY = 0x02, T_RESET = 0x03, T_INFO_OK = 0x81, T_QUERY_OK = 0x82,
       T_RESET_OK = 0x83, T_READY = 0x7E, T_ERROR = 0x7F };
enum { E_FRAME = 1, E_VERSION = 2, E_TYPE = 3, E_LENGTH = 4, E_BATCH = 5, E_RANGE = 6, E_FAULT = 7 };

/* ---------------------------------------------------------------- UART */
static volatile uint8_t rx_ring[256];
static volatile uint8_t rx_head, rx_tail, rx_overflow;

ISR(USART_RX_vect) {
    uint8_t status = UCSR0A;
    uint8_t b = UDR0;
    uint8_t next = (uint8_t)(rx_head + 1);
    if (status & (_BV(FE0) | _BV(DOR0))) rx_overflow = 1; /* line error: spoil this frame */
    if (next == rx_tail) { rx_overflow = 1; return; }
    rx_ring[rx_head] = b;
    rx_head = next;
}

static void uart_init(void) {
    /* U2X: UBRR 16 gives 117647 baud (2.1% fast) instead of 111111 (-3.5%) */
    UCSR0A = _BV(U2X0);
    uint16_t ubrr = (uint16_t)((F_CPU + 4UL * BAUD) / (8UL * BAUD) - 1UL);
    UBRR0H = (uint8_t)(ubrr >> 8);
    UBRR0L = (uint8_t)ubrr;
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00); /* 8N1 */
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

static void uart_put(uint8_t b) {
    while (!(UCSR0A & _BV(UDRE0))) {}
    UDR0 = b;
}

/* ---------------------------------------------------------------- frames out */
static uint8_t tx[TX_MAX + 2];

/* COBS(payload || crc LE) + 0x00; payload is in tx[0..len) */
static void send_frame(uint16_t len) {
    uint16_t crc = 0;
    for (uint16_t i = 0; i < len; i++) crc = _crc_xmodem_update(crc, tx[i]);
    tx[len] = (uint8_t)crc;
    tx[len + 1] = (uint8_t)(crc >> 8);
    uint16_t n = len + 2, i = 0;
    for (;;) {
        uint16_t j = i;
        while (j < n && tx[j] != 0 && j - i < 254) j++;
        uart_put((uint8_t)(j - i + 1));
        for (uint16_t k = i; k < j; k++) uart_put(tx[k]);
        if (j - i == 254) { i = j; continue; }
        if (j == n) break;
        i = j + 1;
    }
    uart_put(0);
}

static uint16_t header(uint8_t type, uint16_t seq) {
    tx[0] = 1;
    tx[1] = type;
    tx[2] = (uint8_t)seq;
    tx[3] = (uint8_t)(seq >> 8);
    return 4;
}

static uint16_t error_msg(uint16_t seq, uint8_t code, const char *msg_P) {
    uint16_t len = header(T_ERROR, seq);
    uint8_t m = (uint8_t)strlen_P(msg_P);
    tx[len++] = code;
    tx[len++] = m;
    memcpy_P(tx + len, msg_P, m);
    return len + m;
}

/* ---------------------------------------------------------------- stored answers */
typedef struct {
    uint8_t used;
    uint16_t seq, req_crc, len;
    uint8_t data[TX_MAX];
} stored_t;
static stored_t store[WINDOW];
static uint8_t store_next;

static void store_clear(void) {
    for (uint8_t i = 0; i < WINDOW; i++) store[i].used = 0;
    store_next = 0;
}

/* ---------------------------------------------------------------- device function */
static uint32_t rng_state = NOISE_SEED;

static uint32_t xorshift32(void) {
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

/* approximately N(0,1): sum of 12 U(0,1) minus 6 (Irwin-Hall, bounded at +-6) */
static float gauss(void) {
    float s = 0.0f;
    for (uint8_t i = 0; i < 12; i++) s += (float)(xorshift32() >> 8) * (1.0f / 16777216.0f);
    return s - 6.0f;
}

static float device_fn(float x) {
    float x2 = x * x;
    float y = x / sqrtf(sqrtf(1.0f + x2 * x2));
    if (NOISE_SIGMA > 0) y += (float)NOISE_SIGMA * gauss();
    return y;
}

#ifdef HWLOOP_INVERSE
/* The wire's float target as the export's input word (round half up, saturate; exact in float32:
 * scaling by a power of two, floorf and v - floor(v) are exact), the inverse in fixed point, its
 * drive word back to a float for the sensor. */
static float inverse_fn(float t) {
    const float lo = -(float)(1L << (HWL_INV_IO_BITS - 1)), hi = (float)((1L << (HWL_INV_IO_BITS - 1)) - 1);
    float v = t * (float)(1L << HWL_INV_T_FRAC), f = floorf(v);
    f += (v - f >= 0.5f) ? 1.0f : 0.0f;
    int16_t tw = (int16_t)(f < lo ? lo : f > hi ? hi : f), xw;
    hwl_inv_apply(&tw, &xw);
    return (float)xw * (1.0f / (float)(1L << HWL_INV_X_FRAC));
}
#define SENSOR_INPUT(v) inverse_fn(v)
#else
#define SENSOR_INPUT(v) (v)
#endif

/* ---------------------------------------------------------------- requests */
static uint8_t rx[RX_KEEP];

static const char m_frame[] PROGMEM = "bad frame";
static const char m_version[] PROGMEM = "unsupported version";
static const char m_type[] PROGMEM = "unknown type";
static const char m_length[] PROGMEM = "body length does not match the header";
static const char m_batch[] PROGMEM = "n > max_batch";
static const char m_range[] PROGMEM = "x out of range";
static const char m_name[] PROGMEM = DEV_NAME;
static const char m_fw[] PROGMEM = FW_STRING;

static uint16_t put_str_P(uint16_t len, const char *s_P) {
    uint8_t m = (uint8_t)strlen_P(s_P);
    tx[len++] = m;
    memcpy_P(tx + len, s_P, m);
    return len + m;
}

static uint16_t put_f32(uint16_t len, float v) {
    memcpy(tx + len, &v, 4); /* AVR is little-endian IEEE-754 */
    return len + 4;
}

/* ---------------------------------------------------------------- host sessions */
static uint32_t session;      /* the last INFO's session */
static uint8_t have_session;  /* 0 after boot and after an empty INFO */

/* An INFO with body length 0 or 4 (u32 session, rx[4..8)): forget the stored
 * answers unless it continues the last INFO's session. */
static void info_session(uint16_t body) {
    uint32_t s = 0;
    if (body == 4) memcpy(&s, rx + 4, 4); /* AVR is little-endian */
    if (body == 0 || !have_session || s != session) store_clear();
    session = s;
    have_session = body == 4;
}

/* Build the answer to a CRC-valid payload of total length plen (only the
 * first RX_KEEP - 2 bytes are in rx[]). Returns the response length in tx[]. */
static uint16_t answer(uint16_t plen, uint16_t seq) {
    uint8_t type = rx[1];
    uint16_t body = plen - 4;
    if (rx[0] != 1) return error_msg(seq, E_VERSION, m_version);
    if (type == T_INFO) {
        if (body != 0 && body != 4) return error_msg(seq, E_LENGTH, m_length);
        info_session(body);
        uint16_t len = header(T_INFO_OK, seq);
        tx[len++] = IN_DIM; tx[len++] = 0;
        tx[len++] = OUT_DIM; tx[len++] = 0;
        tx[len++] = MAX_BATCH; tx[len++] = 0;
        tx[len++] = 0; /* flags: stateless */
        tx[len++] = WINDOW;
        len = put_f32(len, X_LOW);
        len = put_f32(len, X_HIGH);
        len = put_str_P(len, m_name);
        return put_str_P(len, m_fw);
    }
    if (type == T_RESET) {
        if (body) return error_msg(seq, E_LENGTH, m_length);
        /* stateless function: nothing to clear but the stored answers stay valid */
        return header(T_RESET_OK, seq);
    }
    if (type == T_QUERY) {
        if (body < 2) return error_msg(seq, E_LENGTH, m_length);
        uint16_t n = (uint16_t)rx[4] | ((uint16_t)rx[5] << 8);
        if ((uint32_t)body != 2UL + 4UL * IN_DIM * n) return error_msg(seq, E_LENGTH, m_length);
        if (n > MAX_BATCH) return error_msg(seq, E_BATCH, m_batch);
        float x[MAX_BATCH * IN_DIM];
        memcpy(x, rx + 6, 4 * IN_DIM * n);
        for (uint16_t i = 0; i < n * IN_DIM; i++) {
            if (!(x[i] >= X_LOW && x[i] <= X_HIGH)) /* NaN fails too */
                return error_msg(seq, E_RANGE, m_range);
        }
        uint16_t len = header(T_QUERY_OK, seq);
        tx[len++] = (uint8_t)n;
        tx[len++] = (uint8_t)(n >> 8);
        for (uint16_t i = 0; i < n; i++) len = put_f32(len, device_fn(SENSOR_INPUT(x[i])));
        return len;
    }
    return error_msg(seq, E_TYPE, m_type);
}

static void handle(uint16_t plen, uint16_t req_crc) {
    uint16_t seq = (uint16_t)rx[2] | ((uint16_t)rx[3] << 8);
    if (rx[0] == 1 && rx[1] == T_INFO) { /* always afresh, never stored */
        send_frame(answer(plen, seq));
        return;
    }
    for (uint8_t i = 0; i < WINDOW; i++) {
        if (store[i].used && store[i].seq == seq && store[i].req_crc == req_crc) {
            memcpy(tx, store[i].data, store[i].len);
            send_frame(store[i].len);
            return;
        }
    }
    uint16_t len = answer(plen, seq);
    if (seq != 0xFFFF) {
        stored_t *s = &store[store_next];
        store_next = (uint8_t)((store_next + 1) % WINDOW);
        s->used = 1;
        s->seq = seq;
        s->req_crc = req_crc;
        s->len = len;
        memcpy(s->data, tx, len);
    }
    send_frame(len);
}

/* ---------------------------------------------------------------- streaming decoder */
static uint16_t d_len;      /* decoded bytes so far */
static uint8_t d_remain;    /* data bytes left in the current COBS run */
static uint8_t d_code;      /* current run's code byte (0 = none yet) */
static uint8_t d_bad;       /* COBS error or overflow in this frame */
static uint16_t d_crc;      /* CRC over all but the last two decoded bytes */
static uint8_t d_last[2];   /* the last two decoded bytes (delay line) */

static void decoder_reset(void) {
    d_len = 0; d_remain = 0; d_code = 0; d_bad = 0; d_crc = 0;
}

static void emit(uint8_t v) {
    if (d_len >= 2) d_crc = _crc_xmodem_update(d_crc, d_last[0]);
    d_last[0] = d_last[1];
    d_last[1] = v;
    if (d_len < RX_KEEP) rx[d_len] = v;
    if (d_len < 0xFFFF) d_len++;
}

static void end_of_frame(void) {
    uint8_t bad = d_bad || d_remain != 0 || d_len < 6 || d_len > MAX_BLOCK;
    if (!bad) {
        uint16_t got = (uint16_t)d_last[0] | ((uint16_t)d_last[1] << 8);
        bad = got != d_crc;
    }
    if (bad) {
        if (d_len || d_code) { /* ignore empty blocks (back-to-back delimiters) */
            uint16_t len = error_msg(0xFFFF, E_FRAME, m_frame);
            send_frame(len);
        }
    } else {
        handle(d_len - 2, d_crc);
    }
    decoder_reset();
}

static void feed(uint8_t b) {
    if (b == 0) { end_of_frame(); return; }
    if (d_remain == 0) {
        if (d_code && d_code < 0xFF) emit(0);
        d_code = b;
        d_remain = (uint8_t)(b - 1);
    } else {
        emit(b);
        d_remain--;
    }
}

/* ---------------------------------------------------------------- main */
int main(void) {
    uart_init();
    store_clear();
    decoder_reset();
    sei();
    header(T_READY, 0);
    send_frame(4);
    set_sleep_mode(SLEEP_MODE_IDLE);
    for (;;) {
        cli();
        if (rx_overflow) {
            rx_overflow = 0;
            d_bad = 1;
        }
        if (rx_head == rx_tail) {
            (void)UCSR0A; /* lets simavr know the receiver is idle (XON) */
            sleep_enable();
            sei();
            sleep_cpu();
            sleep_disable();
            continue;
        }
        uint8_t b = rx_ring[rx_tail];
        rx_tail = (uint8_t)(rx_tail + 1);
        sei();
        feed(b);
    }
}

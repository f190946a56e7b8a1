/* libopus alone, as the switch uses it (bench/opus-coder.sh): N coder
 * pairs used in turn, as N transcoded calls use theirs (their state cold
 * in the caches), each 20 ms frame of a 1004 Hz tone encoded (VoIP,
 * in-band FEC, the complexity given) and its packet decoded. Prints the
 * process CPU time per frame pair and what 50 pairs a second cost as a
 * share of one core: the codec's part of a transcoded call's CPU, to
 * compare with bench/opus-transcode.sh's whole figure on the same
 * machine. RATE 8000 is the switch's setting; 48000 rustpbx's. */
#include <math.h>
#include <opus.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    int complexity = argc > 2 ? atoi(argv[2]) : 5;
    int frames = argc > 3 ? atoi(argv[3]) : 500;
    int rate = argc > 4 ? atoi(argv[4]) : 8000;
    int per = rate / 50, err;
    OpusEncoder **enc = calloc(n, sizeof *enc);
    OpusDecoder **dec = calloc(n, sizeof *dec);
    opus_int16 *pcm = calloc(per, sizeof *pcm), *out = calloc(per * 6, sizeof *out);
    unsigned char packet[1500];
    long phase = 0;
    for (int i = 0; i < n; i++) {
        enc[i] = opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, &err);
        dec[i] = opus_decoder_create(rate, 1, &err);
        if (!enc[i] || !dec[i]) {
            fprintf(stderr, "opus: %s\n", opus_strerror(err));
            return 1;
        }
        opus_encoder_ctl(enc[i], OPUS_SET_INBAND_FEC(1));
        opus_encoder_ctl(enc[i], OPUS_SET_COMPLEXITY(complexity));
    }
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (int f = 0; f < frames; f++) {
        for (int k = 0; k < per; k++, phase++)
            pcm[k] = (opus_int16)(8000 * sin(2 * M_PI * 1004 * phase / (double)rate));
        for (int i = 0; i < n; i++) {
            int len = opus_encode(enc[i], pcm, per, packet, sizeof packet);
            if (len < 0 || opus_decode(dec[i], packet, len, out, per * 6, 0) < 0) {
                fprintf(stderr, "opus: coding failed\n");
                return 1;
            }
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / ((double)frames * n);
    printf("%s, %d coder pairs, complexity %d, %d Hz: %.1f us per 20 ms frame pair, %.3f %% of a core per call\n",
           opus_get_version_string(), n, complexity, rate, us, us * 50 / 1e4);
    return 0;
}

"""Times Python DLMS decoders on the frames of crates/codec/benches/dlms.rs; prints JSON.

Usage: python dlms_py_bench.py CORPUS_DIR [SECONDS]

Rows (each checked once to read the asserted values before timing):
  gurux/evn          gurux-dlms GXDLMSTranslator.pduToXml with the key: the two M-Bus
                     segments joined (checksums checked, in Python here: gurux's
                     messageToXml takes one frame at a time), AES-GCM decryption of the
                     0x20 (no tag) APDU, the data-notification rendered as XML.
  dlms-cosem/evn-plain  dlms-cosem XDlmsApduFactory on the *plaintext* EVN APDU plus
                     utils.parse_as_dlms_data on its body: decode only (dlms-cosem
                     cannot decrypt 0x20 frames: it always checks a tag).
  dsmr-parser/smarty dsmr-parser TelegramParser(MSN).parse(hex, key, AK): dlms-cosem
                     parses the APDU, checks the tag and decrypts (cryptography's
                     AES-GCM); dsmr-parser then checks the CRC and parses the telegram.
  dlms-cosem/smarty-decrypt  dlms-cosem GeneralGlobalCipher.from_bytes + to_plain_apdu
                     (tag checked): decryption alone.
"""
import contextlib
import io
import json
import os
import sys
import timeit

from dlms_cosem import utils
from dlms_cosem.connection import XDlmsApduFactory
from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser
from gurux_dlms import GXByteBuffer, GXDLMSTranslator
from gurux_dlms.enums import Security, TranslatorOutputType

EVN_KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
SMARTY_KEY = "D491470F47126332B07D1923B3504188"
LUX_AK = "00112233445566778899AABBCCDDEEFF"


def mbus_apdu(frame):
    """Joins the data of consecutive M-Bus long frames (after CI and STSAP/DTSAP)."""
    out = bytearray()
    i = 0
    while i < len(frame):
        n = frame[i + 1]
        if frame[i] != 0x68 or frame[i + 2] != n or frame[i + 3] != 0x68:
            raise ValueError("not a long frame")
        body = frame[i + 4:i + 4 + n]
        if sum(body) & 0xFF != frame[i + 4 + n] or frame[i + 5 + n] != 0x16:
            raise ValueError("checksum or stop byte")
        out += body[5:]
        i += n + 6
    return bytes(out)


def timed(fn, seconds):
    timer = timeit.Timer(fn)
    n, _ = timer.autorange()  # enough calls for >= 0.2 s
    reps = max(3, int(seconds / 0.2))
    return min(timer.repeat(repeat=reps, number=n)) / n


def main():
    corpus = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    with open(os.path.join(corpus, "dlms/at_evn_noe_doc_kaifa_mbus.hex")) as f:
        evn = bytes.fromhex(f.read().strip())
    with open(os.path.join(corpus, "dlms/MANIFEST.json")) as f:
        man = json.load(f)
    vec = next(v for v in man["vectors"] if v["file"] == "at_evn_noe_doc_kaifa_mbus.hex")
    evn_plain = bytes.fromhex(vec["expected"]["plaintext_apdu_hex"])
    with open(os.path.join(corpus, "dsmr/smarty_nexxtlab_encrypted.bin"), "rb") as f:
        smarty = f.read()

    rows = {}
    # gurux prints "Encryption is applied." on every call: keep it off the terminal.
    sink = io.StringIO()

    t = GXDLMSTranslator(TranslatorOutputType.SIMPLE_XML)
    t.blockCipherKey = GXByteBuffer.hexToBytes(EVN_KEY)
    t.security = Security.ENCRYPTION
    t.comments = True  # the translator decrypts only into a comment, with comments on

    def gurux_evn():
        return t.pduToXml(mbus_apdu(evn))

    with contextlib.redirect_stdout(sink):
        xml = gurux_evn()
        assert "0100010800FF" in xml and '<UInt32 Value="00003289" />' in xml, xml[:500]
        assert '<UInt16 Value="0921" />' in xml  # 2337 * 10^-1 V
        rows["gurux/evn"] = timed(gurux_evn, seconds)
        sink.seek(0)
        sink.truncate()

    def cosem_evn_plain():
        apdu = XDlmsApduFactory.apdu_from_bytes(evn_plain)
        return utils.parse_as_dlms_data(apdu.body)

    data = cosem_evn_plain()
    assert 12937 in data and 2337 in data, data
    rows["dlms-cosem/evn-plain"] = timed(cosem_evn_plain, seconds)

    parser = TelegramParser(telegram_specifications.MSN)
    smarty_hex = smarty.hex()

    def dsmr_parser_smarty():
        return parser.parse(smarty_hex, SMARTY_KEY, LUX_AK, throw_ex=True)

    tg = dsmr_parser_smarty()
    assert float(tg.ELECTRICITY_IMPORTED_TOTAL.value) == 6.695
    rows["dsmr-parser/smarty"] = timed(dsmr_parser_smarty, seconds)

    ek, ak = bytes.fromhex(SMARTY_KEY), bytes.fromhex(LUX_AK)

    def cosem_smarty_decrypt():
        return XDlmsApduFactory.apdu_from_bytes(smarty).to_plain_apdu(ek, ak)

    assert cosem_smarty_decrypt().startswith(b"/")
    rows["dlms-cosem/smarty-decrypt"] = timed(cosem_smarty_decrypt, seconds)

    print(json.dumps({k: {"ns_per_frame": v * 1e9, "frames_per_s": 1.0 / v}
                      for k, v in rows.items()}))


if __name__ == "__main__":
    main()

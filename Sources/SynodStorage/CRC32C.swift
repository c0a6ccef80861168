/// CRC-32C (Castagnoli), the checksum of every WAL record: the polynomial iSCSI, ext4 and etcd's
/// WAL use, which detects all burst errors up to 32 bits.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = (crc >> 8) ^ Self.table[Int((crc ^ UInt32(byte)) & 0xFF)] }
        return ~crc
    }
}

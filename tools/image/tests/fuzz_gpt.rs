//! Fuzz target: the GPT reader and the grower that the GCP export runs on an image it
//! is given (`stratus-image export gcp IMAGE`).

use stratus_image::gpt::{self, ESP_FIRST_LBA, ESP_TYPE, Guid, Partition, SECTOR};

/// The first 34 sectors (protective MBR, header, entry array) of a 2 MiB disk with an
/// ESP, plus a variant whose CRCs still hold after a field change.
fn corpus() -> Vec<Vec<u8>> {
    let mut disk = vec![0u8; 2 << 20];
    let sectors = disk.len() as u64 / SECTOR;
    let esp = Partition {
        type_guid: ESP_TYPE,
        unique_guid: Guid([7; 16]),
        first_lba: ESP_FIRST_LBA,
        last_lba: gpt::last_usable_lba(sectors),
        name: "EFI system partition".into(),
    };
    gpt::write(&mut disk, Guid([9; 16]), &[esp]).unwrap();
    let head = disk[..34 * SECTOR as usize].to_vec();
    let mut empty = vec![0u8; 2 << 20];
    gpt::write(&mut empty, Guid([1; 16]), &[]).unwrap();
    vec![head, empty[..34 * SECTOR as usize].to_vec()]
}

#[test]
fn fuzz_gpt_reader_and_grower() {
    let corpus = corpus();
    let refs: Vec<&[u8]> = corpus.iter().map(Vec::as_slice).collect();
    stratus_fuzz::fuzz("gpt", &refs, |input| {
        let Ok(found) = gpt::read_primary(input) else {
            return;
        };
        assert_eq!(found.array.len(), 128 * 128);
        // Growing a disk it accepted either fails cleanly or leaves a GPT that reads back.
        let mut head = input.to_vec();
        for new_sectors in [found.alternate_lba + 1, 1 << 21, 0, 34] {
            if let Ok(tail) = gpt::grow(&mut head, new_sectors) {
                assert_eq!(tail.len() as u64, gpt::BACKUP_SECTORS * SECTOR);
                let again = gpt::read_primary(&head).expect("a grown GPT reads back");
                assert_eq!(again.alternate_lba, new_sectors - 1);
                assert_eq!(again.array, found.array);
            }
        }
    });
}

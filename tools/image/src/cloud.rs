//! The cloud image files derived from one raw image, and the commands that upload them
//! (printed, never run: this tool holds no cloud credentials and uploads nothing).

use std::path::{Path, PathBuf};

use crate::image::MIB;
use crate::{ImageError, gcp, output, vhd, vmdk};

/// One exported cloud image file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudFormat {
    /// Raw GPT disk (AWS snapshot import, `Format=RAW`).
    Raw,
    /// Stream-optimized VMDK (AWS snapshot import, `Format=VMDK`).
    Vmdk,
    /// `disk.raw` in an oldgnu sparse tar.gz, whole GiB (GCP image import).
    GcpTarGz,
    /// Fixed VHD, whole MiB (Azure).
    Vhd,
}

impl CloudFormat {
    /// All four, in the order `cloud-images` writes them.
    pub const ALL: [CloudFormat; 4] = [
        CloudFormat::Raw,
        CloudFormat::Vmdk,
        CloudFormat::GcpTarGz,
        CloudFormat::Vhd,
    ];

    /// The file name written into the output directory.
    pub fn file_name(self) -> &'static str {
        match self {
            CloudFormat::Raw => "stratus-aws.raw",
            CloudFormat::Vmdk => "stratus-aws.vmdk",
            CloudFormat::GcpTarGz => "stratus-gcp.tar.gz",
            CloudFormat::Vhd => "stratus-azure.vhd",
        }
    }

    /// The name on the command line (`raw`, `vmdk`, `gcp`, `vhd`).
    pub fn name(self) -> &'static str {
        match self {
            CloudFormat::Raw => "raw",
            CloudFormat::Vmdk => "vmdk",
            CloudFormat::GcpTarGz => "gcp",
            CloudFormat::Vhd => "vhd",
        }
    }

    /// Parses [`CloudFormat::name`].
    pub fn from_name(name: &str) -> Option<CloudFormat> {
        CloudFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Which cloud takes it.
    pub fn cloud(self) -> &'static str {
        match self {
            CloudFormat::Raw | CloudFormat::Vmdk => "AWS",
            CloudFormat::GcpTarGz => "GCP",
            CloudFormat::Vhd => "Azure",
        }
    }
}

/// Writes `raw` (a raw GPT image, whole MiB) to `out` in `format`.
/// `unix_time` stamps the VHD footer and the tar member; `id` gives the VHD unique id
/// and the VMDK content id.
pub fn export(
    raw: &[u8],
    format: CloudFormat,
    out: &Path,
    unix_time: u64,
    id: [u8; 16],
) -> Result<(), ImageError> {
    if raw.is_empty() || !(raw.len() as u64).is_multiple_of(MIB) {
        return Err(ImageError::NotWholeMib {
            bytes: raw.len() as u64,
        });
    }
    match format {
        CloudFormat::Raw => output::write_sparse(out, raw.len() as u64, &[(0, raw)]),
        CloudFormat::Vhd => {
            let footer = vhd::footer(raw.len() as u64, unix_time, id)?;
            output::write_sparse(
                out,
                raw.len() as u64 + footer.len() as u64,
                &[(0, raw), (raw.len() as u64, &footer)],
            )
        }
        CloudFormat::Vmdk => {
            let name = out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cid = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
            let data = vmdk::from_raw(raw, cid, &name)?;
            output::write_sparse(out, data.len() as u64, &[(0, &data)])
        }
        CloudFormat::GcpTarGz => {
            let disk = gcp::grow_to_gib(raw)?;
            let data = gcp::write_tar_gz(&disk, unix_time, Vec::new())?;
            output::write_sparse(out, data.len() as u64, &[(0, &data)])
        }
    }
}

/// The path of `format`'s file in `dir`.
pub fn path_in(dir: &Path, format: CloudFormat) -> PathBuf {
    dir.join(format.file_name())
}

/// The upload and launch commands for each cloud and architecture, file names filled
/// in from `dir`. Words in capitals (`BUCKET`, `PROJECT`, ...) are the user's to fill.
pub fn upload_commands(dir: &Path) -> String {
    let f = |format| path_in(dir, format).display().to_string();
    let (raw, vmdk, gcp, vhd) = (
        f(CloudFormat::Raw),
        f(CloudFormat::Vmdk),
        f(CloudFormat::GcpTarGz),
        f(CloudFormat::Vhd),
    );
    let vmdk_name = CloudFormat::Vmdk.file_name();
    let gcp_name = CloudFormat::GcpTarGz.file_name();
    let vhd_name = CloudFormat::Vhd.file_name();
    format!(
        r#"# Stratus cloud images: upload and launch commands (printed only; nothing was run).
# Capitalised words are yours to fill in. The same image serves both architectures:
# pick the architecture when you register the image and the instance type.
# Raw alternative for AWS: {raw} with Format=RAW.

## AWS (Graviton: arm64, c7g.medium; x86_64: x86_64, c7i.large)
aws s3 cp {vmdk} s3://BUCKET/{vmdk_name}
aws ec2 import-snapshot --description "Stratus" \
    --disk-container "Format=VMDK,UserBucket={{S3Bucket=BUCKET,S3Key={vmdk_name}}}"
aws ec2 describe-import-snapshot-tasks --import-task-ids IMPORT_TASK_ID   # wait for "completed", note SnapshotId
aws ec2 register-image --name stratus-arm64 --architecture arm64 --boot-mode uefi \
    --ena-support --virtualization-type hvm --root-device-name /dev/xvda \
    --block-device-mappings "DeviceName=/dev/xvda,Ebs={{SnapshotId=SNAPSHOT_ID}}"
aws ec2 run-instances --image-id AMI_ID --instance-type c7g.medium --count 1
aws ec2 get-console-output --instance-id INSTANCE_ID --latest --output text
#   x86_64: register-image --name stratus-x86-64 --architecture x86_64 ..., run-instances --instance-type c7i.large

## GCP (ARM64: t2a-standard-1 in us-central1-a; X86_64: n2-standard-2)
gcloud storage cp {gcp} gs://BUCKET/{gcp_name}
gcloud compute images create stratus-arm64 --source-uri=gs://BUCKET/{gcp_name} \
    --architecture=ARM64 --guest-os-features=UEFI_COMPATIBLE,GVNIC
gcloud compute instances create stratus-arm64 --zone=us-central1-a --machine-type=t2a-standard-1 \
    --image=stratus-arm64 --metadata=serial-port-enable=TRUE
gcloud compute instances get-serial-port-output stratus-arm64 --zone=us-central1-a
#   x86_64: images create stratus-x86-64 ... --architecture=X86_64 --guest-os-features=UEFI_COMPATIBLE,
#           instances create ... --machine-type=n2-standard-2 --image=stratus-x86-64

## Azure (Arm64: Standard_D2ps_v6; x64: Standard_D2s_v5); a Gen2 (UEFI) image
az storage blob upload --account-name ACCOUNT --container-name CONTAINER \
    --name {vhd_name} --file {vhd} --type page
az sig image-definition create --resource-group RG --gallery-name GALLERY \
    --gallery-image-definition stratus-arm64 --publisher PUBLISHER --offer stratus --sku arm64 \
    --os-type Linux --os-state Specialized --hyper-v-generation V2 --architecture Arm64
az sig image-version create --resource-group RG --gallery-name GALLERY \
    --gallery-image-definition stratus-arm64 --gallery-image-version 0.1.0 \
    --os-vhd-uri https://ACCOUNT.blob.core.windows.net/CONTAINER/{vhd_name} --os-vhd-storage-account ACCOUNT
az vm create --resource-group RG --name stratus-arm64 --size Standard_D2ps_v6 --specialized \
    --image /subscriptions/SUBSCRIPTION/resourceGroups/RG/providers/Microsoft.Compute/galleries/GALLERY/images/stratus-arm64/versions/0.1.0 \
    --security-type Standard --boot-diagnostics-storage ACCOUNT
az vm boot-diagnostics get-boot-log --resource-group RG --name stratus-arm64
#   x64: image-definition stratus-x64 ... --architecture x64, vm create ... --size Standard_D2s_v5
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_the_files() {
        let text = upload_commands(Path::new("build/cloud"));
        assert!(
            text.contains("aws s3 cp build/cloud/stratus-aws.vmdk s3://BUCKET/stratus-aws.vmdk")
        );
        assert!(text.contains("--architecture arm64 --boot-mode uefi"));
        assert!(text.contains("gcloud storage cp build/cloud/stratus-gcp.tar.gz"));
        assert!(text.contains("--file build/cloud/stratus-azure.vhd --type page"));
        assert!(text.contains("S3Key=stratus-aws.vmdk}"));
    }

    #[test]
    fn format_names_round_trip() {
        for f in CloudFormat::ALL {
            assert_eq!(CloudFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(CloudFormat::from_name("qcow2"), None);
    }
}

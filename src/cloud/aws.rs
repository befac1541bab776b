//! TEMPORARY stub until the aws branch lands.
use super::*;
use crate::manifest::Provider;
pub struct AwsCloud;
fn no() -> CloudError {
    CloudError::Credentials("aws provider not built yet".into())
}
impl AwsCloud {
    pub async fn connect(_p: &Provider) -> Result<AwsCloud, CloudError> {
        Err(no())
    }
}
impl Cloud for AwsCloud {
    async fn refresh(&self, _: &Owner) -> Result<Observed, CloudError> {
        Err(no())
    }
    async fn import_key_pair(
        &self,
        _: &Owner,
        _: &KeyPairSpec,
        _: &str,
    ) -> Result<String, CloudError> {
        Err(no())
    }
    async fn delete_key_pair(&self, _: &str) -> Result<(), CloudError> {
        Err(no())
    }
    async fn create_security_group(
        &self,
        _: &Owner,
        _: Group,
        _: &SecurityGroupSpec,
    ) -> Result<String, CloudError> {
        Err(no())
    }
    async fn set_ingress(
        &self,
        _: &str,
        _: &[ResolvedRule],
        _: &[ResolvedRule],
    ) -> Result<(), CloudError> {
        Err(no())
    }
    async fn delete_security_group(&self, _: &str) -> Result<(), CloudError> {
        Err(no())
    }
    async fn launch(&self, _: &LaunchRequest) -> Result<Vec<LaunchedInstance>, CloudError> {
        Err(no())
    }
    async fn wait_running(&self, _: &[String]) -> Result<Vec<ObservedInstance>, CloudError> {
        Err(no())
    }
    async fn terminate(&self, _: &[String]) -> Result<(), CloudError> {
        Err(no())
    }
}

//! Amazon EC2 through aws-sdk-ec2 (in progress).

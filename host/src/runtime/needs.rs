//! What a component needs from the instance pool: its core instances,
//! linear memories and tables, counted from its bytes before it compiles.
//!
//! Why count before compiling: wasmtime checks a component against the
//! pool's per-component maxima while it compiles and fails with its own
//! message, so the count must come first to refuse a component with one that
//! names the limit, the component's number and the flag that raises it, and
//! to size a runtime's pool to its one agent (`mandate run`).
//!
//! The count follows wasmtime's (`validate_component` of its pooling
//! allocator): every core module instantiated anywhere in the component,
//! nested components included as often as they are instantiated, with the
//! memories and tables each such module defines (imported ones are another
//! module's). Toolchains build large agents this way: componentize-py links
//! CPython from about 14 core instances, componentize-js StarlingMonkey from
//! a handful.

use wasmparser::{
    ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind,
    ComponentTypeRef, Encoding, Instance, Parser, Payload,
};

/// What instantiating a component takes from the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ComponentNeeds {
    /// Core module instances.
    pub core_instances: u32,
    /// Linear memories the instantiated modules define.
    pub memories: u32,
    /// Tables the instantiated modules define.
    pub tables: u32,
}

impl ComponentNeeds {
    fn add(&mut self, other: ComponentNeeds) {
        self.core_instances = self.core_instances.saturating_add(other.core_instances);
        self.memories = self.memories.saturating_add(other.memories);
        self.tables = self.tables.saturating_add(other.tables);
    }

    /// Whether a session held to `limits` may have a component that needs
    /// this much.
    pub fn fits(&self, limits: &crate::limits::SessionLimits) -> bool {
        super::over_limit(self, limits).is_none()
    }

    /// Counts what instantiating the component in `bytes` takes. Errors with
    /// the parser's message when the bytes are not well-formed.
    pub fn of(bytes: &[u8]) -> Result<ComponentNeeds, String> {
        let mut stack: Vec<Frame> = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|e| e.to_string())?;
            match payload {
                Payload::Version { encoding, .. } => stack.push(Frame::new(encoding)),
                Payload::End(_) => {
                    let Some(done) = stack.pop() else {
                        return Err("an end without a beginning".into());
                    };
                    match stack.last_mut() {
                        Some(parent) => parent.take_nested(done),
                        None => return Ok(done.needs),
                    }
                }
                payload => {
                    let Some((frame, outer)) = stack.split_last_mut() else {
                        return Err("a section before the header".into());
                    };
                    frame.read(payload, outer).map_err(|e| e.to_string())?;
                }
            }
        }
        Err("the component ends early".into())
    }
}

/// One module or component being read, and the index spaces its
/// instantiations refer to.
struct Frame {
    encoding: Encoding,
    /// What this module or component takes when instantiated: for a module,
    /// one instance and its own memories and tables; for a component, the sum
    /// of what it instantiates.
    needs: ComponentNeeds,
    /// The core module index space of a component.
    modules: Vec<ComponentNeeds>,
    /// The component index space of a component.
    components: Vec<ComponentNeeds>,
}

impl Frame {
    fn new(encoding: Encoding) -> Frame {
        let core_instances = u32::from(encoding == Encoding::Module);
        Frame {
            encoding,
            needs: ComponentNeeds {
                core_instances,
                ..ComponentNeeds::default()
            },
            modules: Vec::new(),
            components: Vec::new(),
        }
    }

    /// A nested module or component just ended: it joins its index space.
    fn take_nested(&mut self, nested: Frame) {
        match nested.encoding {
            Encoding::Module => self.modules.push(nested.needs),
            Encoding::Component => self.components.push(nested.needs),
        }
    }

    /// Reads one section of this frame. `outer` holds the enclosing frames,
    /// innermost last, for outer aliases.
    fn read(&mut self, payload: Payload<'_>, outer: &[Frame]) -> wasmparser::Result<()> {
        let count = |n: u32, needs: &mut u32| *needs = needs.saturating_add(n);
        match payload {
            Payload::MemorySection(reader) if self.encoding == Encoding::Module => {
                count(reader.count(), &mut self.needs.memories);
            }
            Payload::TableSection(reader) if self.encoding == Encoding::Module => {
                count(reader.count(), &mut self.needs.tables);
            }
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    if let Instance::Instantiate { module_index, .. } = instance? {
                        // A module this count cannot see (imported) still
                        // takes an instance, as wasmtime counts it.
                        let module = self.modules.get(index(module_index)).copied();
                        self.needs.add(module.unwrap_or(ComponentNeeds {
                            core_instances: 1,
                            ..ComponentNeeds::default()
                        }));
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader {
                    if let ComponentInstance::Instantiate {
                        component_index, ..
                    } = instance?
                    {
                        let component = self.components.get(index(component_index)).copied();
                        self.needs.add(component.unwrap_or_default());
                    }
                }
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    match import?.ty {
                        ComponentTypeRef::Module(_) => self.modules.push(ComponentNeeds::default()),
                        ComponentTypeRef::Component(_) => {
                            self.components.push(ComponentNeeds::default());
                        }
                        _ => {}
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                // An export is a new index in its sort's space, naming the
                // same item.
                for export in reader {
                    let export = export?;
                    match export.kind {
                        ComponentExternalKind::Module => {
                            let same = self.modules.get(index(export.index)).copied();
                            self.modules.push(same.unwrap_or_default());
                        }
                        ComponentExternalKind::Component => {
                            let same = self.components.get(index(export.index)).copied();
                            self.components.push(same.unwrap_or_default());
                        }
                        _ => {}
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader {
                    match alias? {
                        ComponentAlias::InstanceExport { kind, .. } => match kind {
                            ComponentExternalKind::Module => {
                                self.modules.push(ComponentNeeds::default());
                            }
                            ComponentExternalKind::Component => {
                                self.components.push(ComponentNeeds::default());
                            }
                            _ => {}
                        },
                        ComponentAlias::Outer {
                            kind,
                            count,
                            index: at,
                        } => {
                            let from = outer
                                .len()
                                .checked_sub(index(count))
                                .and_then(|i| outer.get(i));
                            match kind {
                                ComponentOuterAliasKind::CoreModule => {
                                    let same = from.and_then(|f| f.modules.get(index(at)));
                                    self.modules.push(same.copied().unwrap_or_default());
                                }
                                ComponentOuterAliasKind::Component => {
                                    let same = from.and_then(|f| f.components.get(index(at)));
                                    self.components.push(same.copied().unwrap_or_default());
                                }
                                _ => {}
                            }
                        }
                        ComponentAlias::CoreInstanceExport { .. } => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A `u32` index as a `usize` (every index fits on the 64-bit hosts wasmtime
/// runs on; one that did not would find nothing).
fn index(i: u32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of an empty component: it instantiates nothing.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn an_empty_component_needs_nothing() {
        assert_eq!(
            ComponentNeeds::of(EMPTY_COMPONENT),
            Ok(ComponentNeeds::default())
        );
    }

    #[test]
    fn bytes_that_are_not_wasm_say_why() {
        let err = ComponentNeeds::of(b"not wasm").unwrap_err();
        assert!(err.contains("magic"), "{err}");
        let err = ComponentNeeds::of(&EMPTY_COMPONENT[..6]).unwrap_err();
        assert!(!err.is_empty());
    }
}
